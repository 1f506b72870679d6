//! One module per top-level command.

pub mod db;
pub mod devices;
pub mod inventory;
pub mod loans;
pub mod persons;
pub mod privacy;
pub mod procurement;
pub mod repairs;
pub mod reports;
pub mod review;
pub mod serve;
pub mod sync;
pub mod ticket_report;
pub mod tickets;

use bestand_core::access::{Actor, Scope};

/// What the command line may reach: everything. Whoever runs `bestand` holds the configuration
/// file, with the database's credentials, and so administers every configured authority
/// (docs/ARCHITECTURE.md, invariants); narrower scopes are for accounts of the web interface.
pub fn scope() -> Scope {
    Scope::All
}

/// Who is acting, for history and approvals: `--by`, else the login name.
pub fn actor(by: Option<String>) -> Actor {
    Actor::CliUser(
        by.or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "cli".to_string()),
    )
}

//! One module per top-level command.

pub mod db;
pub mod devices;
pub mod loans;
pub mod persons;
pub mod privacy;
pub mod review;
pub mod serve;
pub mod sync;

/// Who is acting, for history and approvals: `--by`, else the login name.
pub fn actor(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "cli".to_string())
}

/// `actor` as the core's actor: the person at the command line.
pub fn cli_actor(by: Option<String>) -> bestand_core::Actor {
    bestand_core::Actor::CliUser(actor(by))
}

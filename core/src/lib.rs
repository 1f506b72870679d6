//! The inventory's heart: the domain model, the PostgreSQL store and the sync engine.
//!
//! This crate makes no network calls: connectors hand it pages of normalized records
//! through a channel, and it decides what changes in the inventory.

pub mod access;
pub mod clock;
pub mod error;
pub mod identity;
pub mod loans;
pub mod planning;
pub mod privacy;
pub mod procurement;
pub mod service_level;
pub mod store;
pub mod sync;

// What connectors and the core exchange lives in bestand-model (no SQL there); the core
// names it as its own so `bestand_core::record::DeviceRecord` and the like stay one path.
pub use bestand_model::{model, money, normalize, person, record, sheet, tabular, ticket};

pub use crate::access::{Actor, Scope};
pub use crate::clock::{Clock, FixedClock};
pub use crate::error::{CoreError, Result};

/// The embedded migrations, applied by `bestand db migrate` and by the test harness.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

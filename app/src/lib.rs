//! bestand's application layer: what the `bestand` command and a server share, without clap.
//!
//! It loads and checks the configuration, knows every kind of source (the registry in
//! `kinds`), opens the database (a configured server or bestand's own cluster), reads the
//! wall clock, and runs the scheduler that `bestand serve` drives.

pub mod clock;
pub mod config;
pub mod database;
pub mod error;
pub mod kinds;
pub mod schedule;
pub mod service_hours;
pub mod sources;
pub mod tickets;

pub use crate::clock::SystemClock;
pub use crate::database::{Database, Migrations};
pub use crate::error::AppError;

//! The library half of the `bestand` command: what the binary, the test runner and the
//! integration tests share: configuration, the self-managed PostgreSQL cluster, opening the
//! database, building connectors, output formats and the commands themselves.

pub mod agreement;
pub mod app;
pub mod commands;
pub mod config;
pub mod demo;
pub mod output;
pub mod pgcluster;
pub mod sources;

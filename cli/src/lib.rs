//! The library half of the `bestand` command: the commands themselves and their output
//! formats, shared by the binary and the integration tests. The application wiring they use
//! (configuration, sources, database, scheduler) is `bestand-app`.

pub mod commands;
#[cfg(feature = "demo")]
pub mod demo;
pub mod output;

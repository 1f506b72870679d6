//! The sync engine: applies a source's pages to the inventory, safely.
//!
//! `run` is the machinery every run shares, `devices` the device run (with `matching`),
//! `directory` the directory run, `tickets` the run of a ticket system, `approve` the approval of a blocked run. They all build on
//! `store`, never the other way round.

pub mod approve;
pub mod devices;
pub mod directory;
pub mod guard;
pub(crate) mod matching;
pub(crate) mod payloads;
pub(crate) mod prepare;
pub(crate) mod references;
pub mod run;
pub(crate) mod schools;
pub mod tickets;

/// Field authority lives with the device row in the store, which review resolution shares;
/// kept reachable here, where callers configuring a sync look for it.
pub use crate::store::merge;

pub use self::approve::approve_run;
pub use self::devices::{run_sync, run_sync_retrying, SyncOptions};
pub use self::directory::{run_directory_sync, run_directory_sync_retrying, DirectorySyncOptions};
pub use self::guard::DeletionGuard;
pub use self::protocol::{
    DirectoryItem, FetchFailure, PersonPage, SourceItem, SourcePage, PAGE_CHANNEL_CAPACITY,
};
pub use self::run::{
    with_heartbeat, NoProgress, SyncCounts, SyncProgress, SyncReport, WriteBackCounts,
    HEARTBEAT_INTERVAL, MAX_KEPT_WARNINGS, RUN_ATTEMPTS,
};
pub use self::tickets::{run_ticket_sync, TicketMapping, TicketSyncOptions};
pub use bestand_model::protocol;

//! The sync engine: applies a source's pages to the inventory, safely.

pub mod approve;
pub mod directory;
pub mod engine;
pub mod guard;
pub mod merge;
pub(crate) mod payloads;
pub(crate) mod prepare;
pub(crate) mod references;
pub(crate) mod schools;

pub use self::approve::approve_run;
pub use self::directory::{run_directory_sync, run_directory_sync_retrying, DirectorySyncOptions};
pub use self::engine::{
    run_sync, run_sync_retrying, with_heartbeat, NoProgress, SyncCounts, SyncOptions, SyncProgress,
    SyncReport, HEARTBEAT_INTERVAL, RUN_ATTEMPTS,
};
pub use self::guard::DeletionGuard;
pub use self::protocol::{
    DirectoryItem, FetchFailure, PersonPage, SourceItem, SourcePage, PAGE_CHANNEL_CAPACITY,
};
pub use bestand_model::protocol;

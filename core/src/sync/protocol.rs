//! What flows from a connector to the engine: pages, then exactly one end marker.
//!
//! The channel between them is bounded, so a fast source waits for the database
//! instead of piling pages up in memory.

use serde::Serialize;

use crate::record::DeviceRecord;

/// How many pages may wait between a connector and the engine.
pub const PAGE_CHANNEL_CAPACITY: usize = 4;

/// One page of normalized records.
#[derive(Debug, Clone)]
pub struct SourcePage {
    /// Where the page came from, for error messages and progress (e.g. `mobile-devices page 3`).
    pub label: String,
    pub records: Vec<DeviceRecord>,
    /// The total the source announced for everything it will send, if known; for progress bars.
    pub announced_total: Option<u64>,
}

/// Why a fetch could not deliver everything. Names the page and the cause;
/// the engine adds the source name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchFailure {
    /// The page or request that failed, if the failure belongs to one.
    pub page: Option<String>,
    pub cause: String,
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.page {
            Some(page) => write!(f, "{page}: {}", self.cause),
            None => f.write_str(&self.cause),
        }
    }
}

/// A message from a connector. A fetch ends with `Complete` or `Failed`; a channel that
/// closes without either is treated as a failed fetch.
#[derive(Debug, Clone)]
pub enum SourceItem {
    Page(SourcePage),
    /// Everything was delivered. `reported_total` is the number of records the source said it
    /// holds; the engine fails the run if it received fewer distinct records.
    Complete {
        reported_total: u64,
    },
    Failed(FetchFailure),
}

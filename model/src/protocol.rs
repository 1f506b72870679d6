//! What flows from a connector to the engine: pages (and a school list), then exactly one
//! end marker.
//!
//! The channel between them is bounded, so a fast source waits for the database
//! instead of piling pages up in memory.

use serde::Serialize;

use crate::person::{DirectorySchool, NotPersonCounts, PersonRecord};
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
    /// The schools a source that has its own school list (UCS@school) keys its records'
    /// school hints by; resolved as for its directory run (`sync::schools`). Comes before the
    /// pages whose hints it explains.
    Schools(Vec<DirectorySchool>),
    Page(SourcePage),
    /// Everything was delivered. `reported_total` is the number of records the source said it
    /// holds; the engine fails the run if it received fewer distinct records.
    Complete {
        reported_total: u64,
    },
    Failed(FetchFailure),
}

/// A message from a directory connector: schools and pages of persons, then exactly one
/// `Complete` or `Failed`, as for devices.
#[derive(Debug, Clone)]
pub enum DirectoryItem {
    /// Schools the directory lists; may come before, between or after person pages.
    Schools(Vec<DirectorySchool>),
    Persons(PersonPage),
    /// Accounts the directory lists that are no persons, counted by kind (no names): they are
    /// not sent as persons and not part of `reported_total`. May come more than once; counts add.
    NotPersons(NotPersonCounts),
    /// Everything was delivered; `reported_total` counts persons.
    Complete {
        reported_total: u64,
    },
    Failed(FetchFailure),
}

/// One page of normalized persons.
#[derive(Debug, Clone)]
pub struct PersonPage {
    /// Where the page came from (e.g. `ou=GSL students page 2`).
    pub label: String,
    pub records: Vec<PersonRecord>,
}

//! Connectors: one module per source system, each turning a vendor API into pages of
//! normalized `DeviceRecord`s (MDMs) or `PersonRecord`s (school directories).
//! Connectors speak HTTP (or LDAP) and never touch SQL.

pub mod file;
pub mod glpi;
pub mod http;
pub mod intune;
pub mod iserv_ldap;
pub mod jamf_pro;
pub mod jamf_school;
pub mod kelvin;
pub mod ldap;
pub mod relution;
pub mod request_keys;
pub mod secret;
mod token;
pub mod ucs_ldap;
pub mod url_keys;
pub mod zammad;

/// Helpers the config tests of every source share.
#[cfg(test)]
pub(crate) mod testing {
    /// `base` (a source's minimal table) with the keys of `extra` added or replaced.
    pub(crate) fn table(base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
        let mut value = base;
        if let (Some(object), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            object.extend(extra.clone());
        }
        value
    }
}

use std::sync::Arc;

use async_trait::async_trait;
use bestand_model::person::{DirectorySchool, NotPersonCounts, PersonRecord};
use bestand_model::protocol::{
    DirectoryItem, FetchFailure, PersonPage, SourceItem, SourcePage, PAGE_CHANNEL_CAPACITY,
};
use bestand_model::ticket::{TicketItem, TicketPage, TicketRead};
use tokio::sync::mpsc;

/// A source system that can list its devices.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Sends every record of the source into `sink`, page by page, and returns the total the
    /// source reported. An error means the fetch is incomplete; the engine then changes nothing.
    async fn fetch(&self, sink: &PageSink) -> Result<u64, FetchFailure>;
}

/// The sending half of the bounded page channel. `send` waits while the engine is busy.
#[derive(Clone)]
pub struct PageSink {
    sender: mpsc::Sender<SourceItem>,
}

impl PageSink {
    pub fn new(sender: mpsc::Sender<SourceItem>) -> PageSink {
        PageSink { sender }
    }

    /// Hands one page to the engine. Fails when the engine has stopped listening.
    pub async fn send(&self, page: SourcePage) -> Result<(), FetchFailure> {
        let label = page.label.clone();
        self.deliver(SourceItem::Page(page), label).await
    }

    /// Hands the engine the schools the records' school hints name (their keys), so it
    /// resolves them as the source's directory run does. Send before the pages.
    pub async fn send_schools(&self, schools: Vec<DirectorySchool>) -> Result<(), FetchFailure> {
        self.deliver(SourceItem::Schools(schools), "schools".to_string())
            .await
    }

    async fn deliver(&self, item: SourceItem, label: String) -> Result<(), FetchFailure> {
        deliver(&self.sender, item, label).await
    }
}

/// Sends `item` to the engine; fails, naming `label`, when the engine stopped listening.
async fn deliver<T>(sender: &mpsc::Sender<T>, item: T, label: String) -> Result<(), FetchFailure> {
    sender.send(item).await.map_err(|_| FetchFailure {
        page: Some(label),
        cause: "the sync engine stopped receiving pages".to_string(),
    })
}

/// Runs `connector.fetch` on its own task and returns the receiving end of the page channel.
/// The channel carries the pages, then one `Complete` or `Failed`.
pub fn spawn_fetch(connector: Arc<dyn Connector>) -> mpsc::Receiver<SourceItem> {
    spawn_fetch_with_capacity(connector, PAGE_CHANNEL_CAPACITY)
}

/// `spawn_fetch` with `capacity` pages allowed to wait for the engine (at least one).
pub fn spawn_fetch_with_capacity(
    connector: Arc<dyn Connector>,
    capacity: usize,
) -> mpsc::Receiver<SourceItem> {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    tokio::spawn(async move {
        let sink = PageSink::new(sender.clone());
        let end = match connector.fetch(&sink).await {
            Ok(reported_total) => SourceItem::Complete { reported_total },
            Err(failure) => SourceItem::Failed(failure),
        };
        // The engine may already have given up; nothing is lost by ignoring that.
        let _ = sender.send(end).await;
    });
    receiver
}

/// A school directory (UCS@school, IServ) that can list its schools and people.
#[async_trait]
pub trait DirectoryConnector: Send + Sync {
    /// Sends the directory's schools and every person into `sink` and returns the number of
    /// persons the directory holds. An error means the read is incomplete; the engine then
    /// changes nothing.
    async fn fetch_directory(&self, sink: &DirectorySink) -> Result<u64, FetchFailure>;
}

/// The sending half of a directory channel; `send_*` waits while the engine is busy.
#[derive(Clone)]
pub struct DirectorySink {
    sender: mpsc::Sender<DirectoryItem>,
}

impl DirectorySink {
    pub fn new(sender: mpsc::Sender<DirectoryItem>) -> DirectorySink {
        DirectorySink { sender }
    }

    pub async fn send_schools(&self, schools: Vec<DirectorySchool>) -> Result<(), FetchFailure> {
        self.send(DirectoryItem::Schools(schools), "schools".to_string())
            .await
    }

    /// Tells the engine how many listed accounts were left out as no persons, by kind.
    pub async fn send_not_persons(&self, counts: NotPersonCounts) -> Result<(), FetchFailure> {
        if counts.is_empty() {
            return Ok(());
        }
        self.send(DirectoryItem::NotPersons(counts), "accounts".to_string())
            .await
    }

    /// Hands one page of persons to the engine, labelled for errors and progress.
    pub async fn send_persons(
        &self,
        label: impl Into<String>,
        records: Vec<PersonRecord>,
    ) -> Result<(), FetchFailure> {
        let label = label.into();
        let page = PersonPage {
            label: label.clone(),
            records,
        };
        self.send(DirectoryItem::Persons(page), label).await
    }

    async fn send(&self, item: DirectoryItem, label: String) -> Result<(), FetchFailure> {
        deliver(&self.sender, item, label).await
    }
}

/// Runs `connector.fetch_directory` on its own task and returns the receiving end of the
/// channel: schools and person pages, then one `Complete` or `Failed`.
pub fn spawn_directory_fetch(
    connector: Arc<dyn DirectoryConnector>,
) -> mpsc::Receiver<DirectoryItem> {
    let (sender, receiver) = mpsc::channel(PAGE_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let sink = DirectorySink::new(sender.clone());
        let end = match connector.fetch_directory(&sink).await {
            Ok(reported_total) => DirectoryItem::Complete { reported_total },
            Err(failure) => DirectoryItem::Failed(failure),
        };
        let _ = sender.send(end).await;
    });
    receiver
}

/// A ticket system (Zammad, GLPI) that can list its tickets, all of them or those changed
/// since a watermark.
#[async_trait]
pub trait TicketConnector: Send + Sync {
    /// Sends every ticket `read` asks for into `sink`, page by page, and returns how many the
    /// system said match. An error means the read is incomplete; the engine then changes
    /// nothing.
    async fn fetch_tickets(&self, read: TicketRead, sink: &TicketSink)
        -> Result<u64, FetchFailure>;
}

/// The sending half of a ticket channel; `send` waits while the engine is busy.
#[derive(Clone)]
pub struct TicketSink {
    sender: mpsc::Sender<TicketItem>,
}

impl TicketSink {
    pub fn new(sender: mpsc::Sender<TicketItem>) -> TicketSink {
        TicketSink { sender }
    }

    /// Hands one page of tickets to the engine.
    pub async fn send(&self, page: TicketPage) -> Result<(), FetchFailure> {
        let label = page.label.clone();
        deliver(&self.sender, TicketItem::Page(page), label).await
    }
}

/// Runs `connector.fetch_tickets` on its own task and returns the receiving end of the
/// channel: ticket pages, then one `Complete` or `Failed`.
pub fn spawn_ticket_fetch(
    connector: Arc<dyn TicketConnector>,
    read: TicketRead,
) -> mpsc::Receiver<TicketItem> {
    let (sender, receiver) = mpsc::channel(PAGE_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let sink = TicketSink::new(sender.clone());
        let end = match connector.fetch_tickets(read, &sink).await {
            Ok(reported_total) => TicketItem::Complete { reported_total },
            Err(failure) => TicketItem::Failed(failure),
        };
        let _ = sender.send(end).await;
    });
    receiver
}

/// The device link a ticket system should show in a ticket (write-back, issue 18): the text is
/// the caller's (asset tag, model, warranty end, current loan's borrower role); the marker is a
/// short string unique to this link and its content, such as `[bestand:device=4711:v=3f2a]`, by
/// which a system that keeps notes recognises a note already written, so the same text is never
/// posted twice. A new text needs a new marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLinkText {
    pub text: String,
    pub marker: String,
}

/// What a write-back did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteBackOutcome {
    Written,
    /// The ticket already shows this link (a note with the marker, or the attribute's value).
    AlreadyPresent,
    /// The source is configured not to write back (`write_back = "off"`).
    Disabled,
}

/// Why a write-back failed; names the ticket, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("writing the device link into ticket {ticket} failed: {cause}")]
pub struct WriteBackError {
    pub ticket: String,
    pub cause: String,
}

/// A ticket system that can show a device's link inside a ticket.
#[async_trait]
pub trait TicketWriteBack: Send + Sync {
    /// Whether the source's settings let it write back at all; when not, the caller need not
    /// gather the links (a query over every ticket the run wrote).
    fn enabled(&self) -> bool {
        true
    }

    /// Puts `link` into the ticket with the system's id `ticket` (its `external_id`), unless it
    /// is already there.
    async fn write_back(
        &self,
        ticket: &str,
        link: &DeviceLinkText,
    ) -> Result<WriteBackOutcome, WriteBackError>;
}

//! The normalized ticket record (issue 18): the one shape every ticket system (Zammad, GLPI)
//! is mapped into, and the messages a ticket read sends to the engine.
//!
//! A ticket carries what the service-level figures and the asset links need and nothing more:
//! no article bodies, no reporter names (a role at most), because tickets at schools are full
//! of pupils' and teachers' personal data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::protocol::FetchFailure;

/// Where a ticket stands, in the five states every ticket system can be mapped to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    #[default]
    New,
    Open,
    /// Waiting for someone else (the school, a provider, a reminder date).
    Pending,
    /// Solved or closed.
    Closed,
    /// Merged into another ticket; `TicketRecord::merged_into` names it.
    Merged,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::New => "new",
            TicketState::Open => "open",
            TicketState::Pending => "pending",
            TicketState::Closed => "closed",
            TicketState::Merged => "merged",
        }
    }
}

/// One ticket as one ticket system reports it. Times are UTC instants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The system's own id, unique within the source (Zammad's ticket `id`).
    pub external_id: String,
    /// The number people quote ("31001"); may differ from the id.
    pub number: String,
    pub title: String,
    pub state: TicketState,
    /// The state as the system names it ("pending reminder"), for the mapping and for display.
    pub source_state: String,
    /// The priority as the system names it ("2 normal"); mapped by configuration.
    pub priority: Option<String>,
    /// The group (queue) the ticket is in; maps to a topic or a provider by configuration.
    pub group: Option<String>,
    /// The customer's organization: the school, mapped like directory schools.
    pub organization: Option<String>,
    /// The owner's login, only as a provider hint (a provider's agents); never shown as a name.
    pub owner: Option<String>,
    pub tags: Vec<String>,
    /// The reporter's role where the system knows it ("teacher", "school_admin"), never a name.
    pub customer_role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    /// When it was solved or closed (Zammad `close_at`).
    pub closed_at: Option<DateTime<Utc>>,
    /// When it went to its current group, where the system reports it (the forwarding time for
    /// a provider's group).
    pub group_since: Option<DateTime<Utc>>,
    /// The escalation deadlines the system computed from its own SLA, if any.
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub close_due_at: Option<DateTime<Utc>>,
    /// The external id of the ticket this one was merged into.
    pub merged_into: Option<String>,
    /// Values of the structured fields configured as asset references (`inventarnummer`,
    /// `serial`), with the field's name.
    pub asset_fields: Vec<AssetField>,
    /// Assets the ticket system itself links to the ticket (GLPI `Item_Ticket`).
    pub linked_items: Vec<LinkedItem>,
    /// Problems found while mapping this ticket (an unparsable time, say): the ticket is kept,
    /// the bad field left empty, and the problem reported with the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A structured field of a ticket that names an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetField {
    pub field: String,
    pub value: String,
}

/// An asset the ticket system links to a ticket, as that system describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedItem {
    /// The item type ("Computer", "Monitor", "Phone").
    pub kind: String,
    /// The system's id of the item.
    pub item_id: String,
    pub serial_number: Option<String>,
    /// The inventory number (GLPI `otherserial`): our asset tag.
    pub asset_tag: Option<String>,
    pub name: Option<String>,
}

/// What a ticket read asks for: everything, or what changed since a watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TicketRead {
    /// `None` reads every ticket (a full read, which also finds deletions); otherwise tickets
    /// updated at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
}

/// One page of tickets.
#[derive(Debug, Clone)]
pub struct TicketPage {
    /// Where the page came from (`tickets/search page 3`).
    pub label: String,
    pub records: Vec<TicketRecord>,
    /// The total the system announced for this read, if known; for progress.
    pub announced_total: Option<u64>,
}

/// A message from a ticket connector: pages, then exactly one `Complete` or `Failed`.
#[derive(Debug, Clone)]
pub enum TicketItem {
    Page(TicketPage),
    /// Everything asked for was delivered; `reported_total` is how many tickets the system
    /// said match the read.
    Complete {
        reported_total: u64,
    },
    Failed(FetchFailure),
}

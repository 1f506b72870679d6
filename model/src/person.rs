//! The normalized person record: the one shape every directory connector (UCS@school, IServ,
//! Kelvin) maps its users into, and the schools a directory names.
//!
//! Only what a feature needs is carried: names, login, email, role, school, class and the
//! directory's ids. No birthdays, addresses or photos, even where the directory has them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::PersonRole;

/// One person as one directory reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// The source's own stable key for this person, unique within the source (UCS `entryUUID`,
    /// IServ `uuid`, Kelvin `source_uid/record_uid`). Never the login, which can be renamed.
    pub external_id: String,
    /// The login (`uid`, Kelvin `name`).
    pub username: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub ids: PersonIds,
    /// One entry per school, role and class; a teacher at two schools has two.
    pub memberships: Vec<Membership>,
    /// Problems found while mapping this person (an unknown role, say): the person is kept and
    /// the problem reported with the sync run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The directory still lists the person but says they have left the school (IServ: moved
    /// into a former pupils' group). The engine marks this source's link as gone and keeps the
    /// memberships it had, instead of taking the record's (now empty) ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left: bool,
}

/// The immutable ids a directory gives a person; the engine matches on them before anything
/// else (see docs/persons.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIds {
    /// `ucsschoolRecordUID`: the key of the school administration system the user came from.
    pub record_uid: Option<String>,
    /// `ucsschoolSourceUID`: which school administration system `record_uid` belongs to.
    pub source_uid: Option<String>,
    /// The directory's own object id: UCS `entryUUID`, IServ `uuid`.
    pub directory_uuid: Option<String>,
    /// Microsoft Entra object id, where a directory carries it.
    pub entra_object_id: Option<String>,
}

/// A person's place at one school.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The directory's key for the school (UCS OU name, IServ configured school); the engine
    /// maps it to a configured school by mapping, school number, name or alias.
    pub school: String,
    pub role: PersonRole,
    /// The class (Klasse) for pupils, as the directory names it without the school prefix
    /// (`5a`, not `GSL-5a`).
    pub class: Option<String>,
}

/// A school as a directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySchool {
    /// The key memberships use (UCS OU name).
    pub key: String,
    pub display_name: Option<String>,
    /// The official school number (Schulnummer), where the directory carries it.
    pub school_number: Option<String>,
}

/// What an account a directory lists is, when it is no person bestand keeps: an account in no
/// configured role group. Such accounts are counted per kind in the run's report, never named
/// and never stored (parents are adults whose data bestand has no use for; the rest are no
/// people at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Parent,
    Guest,
    Exam,
    Projector,
    Mailbox,
    Other,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Parent => "parent",
            AccountKind::Guest => "guest",
            AccountKind::Exam => "exam",
            AccountKind::Projector => "projector",
            AccountKind::Mailbox => "mailbox",
            AccountKind::Other => "other",
        }
    }
}

/// How many accounts of each kind a directory read left out as no persons.
pub type NotPersonCounts = BTreeMap<AccountKind, u64>;

impl PersonRecord {
    /// A stable hash of everything the engine reads from this record; equal hashes mean the
    /// person has not changed since the last run.
    pub fn content_hash(&self) -> [u8; 16] {
        crate::record::stable_hash(self)
    }
}

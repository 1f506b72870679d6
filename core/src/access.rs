//! Who may see and change what: the scope every read and write of core takes, and the actor
//! it records.
//!
//! A scope is required, never optional, so a caller cannot forget it: the CLI passes the
//! widest scope its configuration allows, a web handler the scope of its account. A row
//! outside the scope answers as if it did not exist (`CoreError::NotFound`), so a caller
//! cannot even learn that another school's device exists.

use std::collections::BTreeSet;
use std::fmt;

use uuid::Uuid;

/// Which part of the inventory a caller may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every authority: the shell admin with the configuration file, the scheduler.
    All,
    /// Everything of one school authority (Schulträger): its IT admins.
    Authority(Uuid),
    /// Some schools of one authority: a school's secretary or IT contact teacher. Rows of the
    /// authority that belong to no school (unassigned devices, runs, review items without a
    /// device) are outside this scope.
    Schools {
        authority: Uuid,
        schools: BTreeSet<Uuid>,
    },
}

impl Scope {
    /// A scope of `schools` of `authority`; an empty set reaches nothing.
    pub fn schools(authority: Uuid, schools: impl IntoIterator<Item = Uuid>) -> Scope {
        Scope::Schools {
            authority,
            schools: schools.into_iter().collect(),
        }
    }

    /// The one authority the scope is limited to, if any: bind it as `$n::uuid` and test
    /// `($n::uuid is null or authority_id = $n)`.
    pub fn authority_param(&self) -> Option<Uuid> {
        match self {
            Scope::All => None,
            Scope::Authority(authority) | Scope::Schools { authority, .. } => Some(*authority),
        }
    }

    /// The schools the scope is limited to, if it is: bind it as `$n::uuid[]` and test
    /// `($n::uuid[] is null or school_id = any($n))`. A row without a school then fails the
    /// test, as it should.
    pub fn schools_param(&self) -> Option<Vec<Uuid>> {
        match self {
            Scope::Schools { schools, .. } => Some(schools.iter().copied().collect()),
            _ => None,
        }
    }

    /// Whether a row of `authority` at `school` (none: no school) is inside the scope. For
    /// checks in Rust on rows already read; SQL filters use the params above.
    pub fn admits(&self, authority: Uuid, school: Option<Uuid>) -> bool {
        match self {
            Scope::All => true,
            Scope::Authority(own) => *own == authority,
            Scope::Schools {
                authority: own,
                schools,
            } => *own == authority && school.is_some_and(|school| schools.contains(&school)),
        }
    }

    /// Whether the scope reaches every row of `authority` (runs, sources, review of
    /// identities): authority-wide work needs an authority-wide scope.
    pub fn covers_authority(&self, authority: Uuid) -> bool {
        match self {
            Scope::All => true,
            Scope::Authority(own) => *own == authority,
            Scope::Schools { .. } => false,
        }
    }
}

/// Who did something, as history, loans and review record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person signed in to bestand (web or API), by account id.
    Account(Uuid),
    /// Whoever runs the `bestand` command: the OS user, or the name given with `--by`.
    CliUser(String),
    /// A sync or directory run of the named source.
    Sync { source: String },
    /// bestand itself: the retention purge, the scheduler.
    System(&'static str),
}

impl Actor {
    /// The name stored in `handed_out_by`, `returned_by` and the like: the plain name for a
    /// person at the command line, so records read as they did before accounts existed.
    pub fn name(&self) -> String {
        match self {
            Actor::Account(account) => format!("account:{account}"),
            Actor::CliUser(name) => name.clone(),
            Actor::Sync { source } => format!("source:{source}"),
            Actor::System(what) => format!("system:{what}"),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_school_scope_admits_only_its_schools_of_its_authority() {
        let authority = Uuid::from_u128(1);
        let other_authority = Uuid::from_u128(2);
        let school_a = Uuid::from_u128(10);
        let school_b = Uuid::from_u128(11);
        let scope = Scope::schools(authority, [school_a]);
        assert!(scope.admits(authority, Some(school_a)));
        assert!(!scope.admits(authority, Some(school_b)));
        assert!(!scope.admits(authority, None));
        assert!(!scope.admits(other_authority, Some(school_a)));
        assert!(!scope.covers_authority(authority));
        assert_eq!(scope.schools_param(), Some(vec![school_a]));
        assert_eq!(scope.authority_param(), Some(authority));
    }

    #[test]
    fn an_authority_scope_admits_unassigned_rows_of_its_authority_only() {
        let authority = Uuid::from_u128(1);
        let scope = Scope::Authority(authority);
        assert!(scope.admits(authority, None));
        assert!(!scope.admits(Uuid::from_u128(2), None));
        assert!(scope.covers_authority(authority));
        assert_eq!(scope.schools_param(), None);
        assert!(Scope::All.admits(Uuid::from_u128(2), None));
        assert_eq!(Scope::All.authority_param(), None);
    }
}

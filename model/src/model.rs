//! The closed vocabularies of the inventory, shared by the store, the connectors and the CLI.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a string-backed enum whose text form is what the database stores.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($name),
                        other,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// What kind of device this is; drives replacement cycles and reports.
    DeviceCategory {
        Tablet => "tablet",
        Laptop => "laptop",
        Desktop => "desktop",
        Display => "display",
        Printer => "printer",
        Other => "other",
    }
);

// The variants come from a macro, which cannot take a `#[default]` on one of them.
#[allow(clippy::derivable_impls)]
impl Default for DeviceCategory {
    fn default() -> Self {
        DeviceCategory::Other
    }
}

text_enum!(
    /// Where a device stands in its life, from order to disposal.
    LifecycleState {
        Ordered => "ordered",
        Delivered => "delivered",
        InStock => "in_stock",
        InUse => "in_use",
        // Lent out; a device with an active loan is in this state (docs/lifecycle.md).
        OnLoan => "on_loan",
        InRepair => "in_repair",
        Retired => "retired",
        Disposed => "disposed",
        Lost => "lost",
        Stolen => "stolen",
        // Back from a loan damaged or incomplete: someone looks at it before it is lent again.
        ToCheck => "to_check",
    }
);

text_enum!(
    /// Where a loan stands: lent out, or closed one of four ways (kept either way).
    LoanState {
        Active => "active",
        Returned => "returned",
        Lost => "lost",
        Stolen => "stolen",
        Cancelled => "cancelled",
    }
);

text_enum!(
    /// German school types (Schulformen).
    SchoolType {
        Grundschule => "grundschule",
        Hauptschule => "hauptschule",
        Realschule => "realschule",
        Gesamtschule => "gesamtschule",
        Sekundarschule => "sekundarschule",
        Gymnasium => "gymnasium",
        Foerderschule => "foerderschule",
        Berufsschule => "berufsschule",
        Other => "other",
    }
);

text_enum!(
    /// The state of one sync run.
    SyncStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Blocked => "blocked",
        Aborted => "aborted",
    }
);

text_enum!(
    /// A person's role at one school, as UCS@school and IServ distinguish them.
    PersonRole {
        Student => "student",
        Teacher => "teacher",
        Staff => "staff",
        SchoolAdmin => "school_admin",
    }
);

text_enum!(
    /// How a device left the authority for good (`device_disposal.method`).
    DisposalMethod {
        Recycler => "recycler",
        Sold => "sold",
        Donated => "donated",
        ReturnedToLessor => "returned_to_lessor",
        Destroyed => "destroyed",
    }
);

text_enum!(
    /// Who pays a repair (`repair.billing`): a warranty claim, the Schulträger, or the maker
    /// outside warranty.
    RepairBilling {
        Warranty => "warranty",
        Paid => "paid",
        Goodwill => "goodwill",
    }
);

text_enum!(
    /// How a repair ended (`repair.outcome`).
    RepairOutcome {
        Repaired => "repaired",
        Replaced => "replaced",
        NotRepairable => "not_repairable",
    }
);

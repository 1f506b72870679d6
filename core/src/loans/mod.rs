//! Loans (Leihe): schools hand devices to pupils and teachers and take them back, one at a
//! time across the counter or hundreds at once when the school year starts.
//!
//! A loan is a row in `loan`; every step on it (hand-out, return, extension, loss, theft,
//! cancellation, signed agreement) is also a `device_event`, so a device's history tells its
//! whole loan story. Events carry the loan id and the person id only: history is append-only,
//! and names and free text must stay where the privacy purge can reach them.
//!
//! One device has at most one active loan. Every step locks the device row first, so
//! concurrent steps on one device queue; behind that, the partial unique index
//! `loan_one_active_per_device` makes a second active loan impossible even for a writer that
//! skips the lock. Each loan rule (due date, lendable device, one active loan) is one function
//! in `rules.rs` that every kind of hand-out calls.
//!
//! Every public function that reads or writes the database takes the caller's `Scope`: a loan
//! belongs to its lending school, and a device or borrower outside the scope answers as
//! unknown. Functions that change something take the `Actor` whose name `handed_out_by`,
//! `returned_by` and history record.
//! docs/loans.md explains the rules for people.

mod agreement;
mod bulk;
mod candidates;
pub(crate) mod checks;
mod class_set;
mod issue;
mod policy;
mod queries;
mod rules;
mod scoped;
mod steps;
mod tags;

pub use self::agreement::{agreement_facts, AgreementFacts};
pub use self::bulk::{import_loans, AcceptedRow, BulkOptions, BulkReport, BulkRow, RowError};
pub use self::candidates::{assigned_without_loan, spare_device_for, AssignedWithoutLoan};
pub use self::class_set::{
    issue_class_set, ClassSetLine, ClassSetReport, ClassSetRequest, DevicePool,
};
pub use self::issue::{issue_loan, IssueRequest};
pub use self::policy::{parse_date, LoanPolicy, MonthDay, DEFAULT_ACCESSORIES};
pub use self::queries::{
    get_loan, group_by_class, left_with_device, list_loans, loans_of_device, loans_of_person,
    overdue_by_class, LoanFilter, LoanGroup, LoanView,
};
pub use self::steps::{
    active_loan_of_device, cancel_loan, extend_loan, finish_check, mark_lost, record_agreement,
    resolve_loan, return_loan, Loss, ReturnOutcome, ReturnRequest,
};
pub use self::tags::{tag_devices, TaggedDevice};

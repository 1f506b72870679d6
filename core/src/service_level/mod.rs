//! Service levels (issue 18): the service-hours calendar and the ticket figures the authority
//! steers its providers by, as pure functions over plain values.
//!
//! Nothing here reads the database or the clock: the ticket report reads the facts from the
//! store and the calendar from the configuration, and passes them in, so the CLI, the XLSX
//! writer and tests all compute the same figures (docs/service-levels.md).

mod calendar;
mod figures;
mod period;

pub use calendar::{
    parse_service_time, service_duration, DateRange, Land, ServiceCalendar, ServiceInterval,
    ServiceTimeline, WeeklyHours,
};
pub use figures::{
    replacement_feed, ticket_figures, CohortTickets, DeviceCounts, Dimension, Figures,
    GroupFigures, PriorityTarget, QuarterFigures, ServiceTargets, TicketDevice, TicketFacts,
    TicketFigures, TimeFigures, TopicVolume,
};
pub use period::Quarter;

// `TicketFacts::state` is the ticket record's state; named here so callers need no second path.
pub use bestand_model::ticket::TicketState;

/// A value of the service-level configuration or a period that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{value}\": {reason}")]
pub struct ServiceLevelError {
    /// The value as written.
    pub value: String,
    /// What is wrong with it and what would be right.
    pub reason: String,
}

impl ServiceLevelError {
    fn new(value: &str, reason: impl Into<String>) -> ServiceLevelError {
        ServiceLevelError {
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// A wall-clock time in Europe/Berlin as an instant (the earlier one where it happens twice).
#[cfg(test)]
pub(crate) fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono_tz::Europe::Berlin
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .expect("a valid local time")
        .with_timezone(&chrono::Utc)
}

//! What flows between the connectors and the inventory core: device records, person records,
//! the page protocol, and the normalisation of what sources send (serials, MACs, dates,
//! prices, spreadsheets).
//!
//! This crate has no database and no network: connectors depend on it, and on nothing of the
//! core's SQL, so the crate graph (not discipline) keeps SQL out of connectors.

pub mod model;
pub mod money;
pub mod normalize;
pub mod person;
pub mod protocol;
pub mod record;
pub mod sheet;
pub mod tabular;
pub mod ticket;

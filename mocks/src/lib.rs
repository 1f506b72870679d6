//! Test fixtures that speak the vendors' wire formats: a deterministic device generator for the
//! fictional authority Musterstadt and a fake Jamf Pro server. Deliberately independent of
//! `bestand-core` and `bestand-connectors`, so it checks the connectors from the outside.

pub mod directory;
mod error;
pub mod generator;
pub mod intune;
pub mod jamf_pro;
pub mod jamf_school;
pub mod kelvin;
pub mod musterstadt;
mod plumbing;
pub mod relution;
pub mod zammad;

pub use directory::Directory;
pub use error::MockError;
pub use generator::{Device, DeviceKind, EpochChanges, Fleet, FleetSnapshot};
pub use jamf_pro::{
    Fault, FaultPlan, Faults, JamfProMock, MockConfig, PageFault, RequestCounts, ShortPage,
};
pub use kelvin::{KelvinMock, KelvinMockConfig};
pub use musterstadt::{authority_toml, schools, School, SchoolType};

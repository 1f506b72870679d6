//! The one integration-test binary (see docs/ARCHITECTURE.md, "Testing").
//! Add a module here rather than a new file under tests/, so everything links once.

// Everything in this binary is test code, where a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod access_loans;
mod agreement;
mod cli_config;
mod csv_output;
mod demo;
mod device_identity;
mod directory_sync;
mod end_to_end;
mod fault_matrix;
mod file_source;
mod glpi;
mod intune;
mod iserv_ldap;
mod jamf_pro;
mod jamf_school;
mod kelvin;
mod lifecycle;
mod loan_agreements;
mod loan_rules;
mod loans;
mod mock_server;
mod persons_queries;
mod privacy;
mod processes;
mod purchases;
mod relution;
mod reports;
mod reports_xlsx;
mod run_liveness;
mod school_servers;
mod serve;
mod slapd;
mod support;
mod sync_engine;
mod sync_scope;
mod tickets;
mod ucs_ldap;
mod zammad;

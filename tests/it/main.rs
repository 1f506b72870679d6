//! The one integration-test binary (see docs/ARCHITECTURE.md, "Testing").
//! Add a module here rather than a new file under tests/, so everything links once.

mod cli_config;
mod jamf_pro;
mod mock_server;
mod support;
mod sync_engine;

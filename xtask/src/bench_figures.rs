//! `cargo xtask bench --ticket-figures [N]`: times the service-level figures (issue 18) over N
//! generated ticket facts (default 500,000) in a release build. The figures are pure functions,
//! so this needs no database: it runs `bestand-app`'s example `ticket_figures`, which times the
//! call itself (the core may not read a clock) and prints the result (docs/performance.md).

use std::path::Path;

use anyhow::Context;

pub fn bench_ticket_figures(workspace: &Path, tickets: u64) -> anyhow::Result<()> {
    crate::step(&format!(
        "ticket figures over {tickets} generated tickets (release build)"
    ));
    let mut command = crate::cargo(workspace);
    command.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "bestand-app",
        "--example",
        "ticket_figures",
        "--",
        &tickets.to_string(),
    ]);
    crate::check(&mut command).context("the ticket figures benchmark failed")
}

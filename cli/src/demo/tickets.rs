//! The service-desk part of `bestand demo`: after the mock Zammad's tickets were read and
//! linked to their devices, the figures the authority reviews with its providers for the last
//! complete quarter, counted in the service sheet's hours, and the same report as a workbook.
//! It goes through the core function `bestand reports tickets` calls, so the demo shows what a
//! user would get.

use std::path::Path;

use bestand_core::service_level::{Dimension, GroupFigures, Quarter, TimeFigures};
use bestand_core::store::ticket_report::{self, TicketReport, TicketReportRequest};
use bestand_core::Clock;
use bestand_documents::workbook::write_xlsx;

use crate::commands::reports::workbooks;
use crate::commands::ticket_report::{period, service_hours, workbook};
use bestand_app::config::Config;
use bestand_app::database::Database;
use bestand_app::SystemClock;

/// Prints the last complete quarter's figures and writes `tickets.xlsx`; returns the quarter.
pub async fn run(database: &Database, config: &Config, data_dir: &Path) -> anyhow::Result<Quarter> {
    let period = period(None, SystemClock.now())?;
    let request = TicketReportRequest {
        authority: None,
        period,
        quarters: 8,
    };
    let (calendar, targets) = service_hours(config, None);
    let report = ticket_report::ticket_report(
        &database.pool,
        &crate::commands::scope(),
        &calendar,
        &targets,
        &request,
    )
    .await?;
    print_report(&report);
    let path = data_dir.join("tickets.xlsx");
    workbooks::write_atomically(&path, &write_xlsx(&workbook(&report))?)?;
    println!("  workbook with one chart per figure: {}", path.display());
    Ok(period)
}

fn hours(figures: &TimeFigures) -> String {
    match (figures.median_hours, figures.p90_hours) {
        (Some(median), Some(p90)) => {
            format!("median {median:.1} h, 90 % within {p90:.1} h").replace('.', ",")
        }
        _ => "none measured".to_string(),
    }
}

fn print_report(report: &TicketReport) {
    let Some(quarter) = report.figures.quarters.last() else {
        return;
    };
    let groups = |dimension: Dimension| -> Vec<&GroupFigures> {
        quarter
            .groups
            .iter()
            .filter(|g| g.dimension == dimension)
            .collect()
    };
    println!(
        "\nThe service desk in {} (service hours Mon-Thu 8-16, Fri 8-13, NRW holidays; {} tickets \
         read for eight quarters):",
        quarter.quarter, report.tickets_read
    );
    if let Some(all) = groups(Dimension::All).first() {
        let f = &all.figures;
        println!(
            "  opened {}, solved {}, open at the end {}",
            f.opened, f.solved, f.backlog
        );
        println!("  reaction:   {}", hours(&f.reaction));
        println!("  resolution: {}", hours(&f.resolution));
    }
    for provider in groups(Dimension::Provider) {
        if let Some(name) = &provider.key {
            println!(
                "  forwarded to {name}: {} tickets, resolution from forwarding {}",
                provider.forwarded.opened,
                hours(&provider.forwarded.resolution)
            );
        }
    }
    let mut models: Vec<&GroupFigures> = groups(Dimension::Model)
        .into_iter()
        .filter(|g| g.key.is_some() && g.devices.unwrap_or(0) >= 20)
        .collect();
    models.sort_by(|a, b| {
        b.tickets_per_100_devices
            .unwrap_or(0.0)
            .total_cmp(&a.tickets_per_100_devices.unwrap_or(0.0))
    });
    for model in models.iter().take(3) {
        println!(
            "  {}: {} tickets per 100 devices ({} devices)",
            model.key.as_deref().unwrap_or_default(),
            format!("{:.1}", model.tickets_per_100_devices.unwrap_or(0.0)).replace('.', ","),
            model.devices.unwrap_or(0)
        );
    }
}

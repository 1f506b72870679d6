//! `bestand reports tickets`: the service-level figures of a quarter (docs/service-levels.md)
//! as tables for people, JSON and CSV for scripts, an Excel workbook with one chart per figure
//! over the last eight quarters, and the same charts as SVG files. The figures come from core;
//! this module lays them out.

use std::path::PathBuf;

use anyhow::Context;
use bestand_core::service_level::{
    Dimension, Figures, GroupFigures, Quarter, ServiceCalendar, ServiceTargets,
};
use bestand_core::store::ticket_report::{self, TicketReport, TicketReportRequest};
use bestand_documents::chart::{chart_svg, Chart, ChartKind, Series};
use bestand_documents::workbook::{
    write_xlsx, Cell, ChartSheet, Column, ColumnKind, Sheet, Workbook,
};
use clap::Args;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use crate::output::Format;
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Args)]
pub struct TicketReportArgs {
    /// The quarter, `2026-Q3`; default the last complete quarter.
    #[arg(long)]
    pub period: Option<String>,
    /// The authority (slug); needed when tickets of several are in reach.
    #[arg(long)]
    pub authority: Option<String>,
    /// How many quarters the figures and charts cover, the period last.
    #[arg(long, default_value_t = 8)]
    pub quarters: usize,
    /// Also write an Excel workbook: one sheet per view, one chart per figure.
    #[arg(long, value_name = "FILE")]
    pub xlsx: Option<PathBuf>,
    /// Also write every chart as an SVG file into this folder.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
}

/// The quarter a report is about: the one named, else the last complete one before `now`.
pub fn period(text: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Quarter> {
    match text {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|error| anyhow::anyhow!("--period {text:?}: {error}")),
        None => Ok(Quarter::containing(now).previous()),
    }
}

/// The service hours and targets of `authority` (or of the only one configured): its own, else
/// the service sheet's (NRW holidays, no targets).
pub fn service_hours(
    config: &Config,
    authority: Option<&str>,
) -> (ServiceCalendar, ServiceTargets) {
    let slug = match authority {
        Some(slug) => Some(slug),
        None if config.authorities.len() == 1 => Some(config.authorities[0].slug.as_str()),
        None => None,
    };
    match slug.and_then(|slug| config.service_level(slug)) {
        Some(level) => (level.calendar, level.targets),
        None => (
            ServiceCalendar::service_sheet(bestand_core::service_level::Land::NordrheinWestfalen),
            ServiceTargets::default(),
        ),
    }
}

pub async fn run(args: TicketReportArgs, config: &Config, format: Format) -> anyhow::Result<()> {
    let now = bestand_core::Clock::now(&SystemClock);
    let request = TicketReportRequest {
        authority: args.authority.clone(),
        period: period(args.period.as_deref(), now)?,
        quarters: args.quarters.clamp(1, 40),
    };
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let scope = super::scope();
    let (calendar, targets) = service_hours(config, request.authority.as_deref());
    let report =
        ticket_report::ticket_report(&database.pool, &scope, &calendar, &targets, &request).await;
    database.close().await?;
    let report = report?;
    write_report(std::io::stdout().lock(), &report, format)?;
    if let Some(path) = &args.xlsx {
        let bytes = write_xlsx(&workbook(&report))?;
        super::reports::workbooks::write_atomically(path, &bytes)?;
        eprintln!("workbook written: {}", path.display());
    }
    if let Some(dir) = &args.charts {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, chart) in charts(&report) {
            let path = dir.join(format!("{name}.svg"));
            super::reports::workbooks::write_atomically(
                &path,
                chart_svg(&chart, 900, 500)?.as_bytes(),
            )?;
            eprintln!("chart written: {}", path.display());
        }
    }
    Ok(())
}

const HEADERS: [&str; 15] = [
    "quarter",
    "by",
    "group",
    "opened",
    "solved",
    "backlog",
    "reaction median h",
    "reaction p90 h",
    "reaction within target",
    "resolution median h",
    "resolution p90 h",
    "resolution within target",
    "forwarded",
    "forwarded resolution median h",
    "per 100 devices",
];

fn dimension_name(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::All => "all",
        Dimension::School => "school",
        Dimension::Provider => "provider",
        Dimension::Model => "model",
        Dimension::AgeYear => "age (years)",
        Dimension::Topic => "topic",
        Dimension::Priority => "priority",
    }
}

fn hours(value: Option<f64>) -> String {
    value.map_or_else(String::new, |h| format!("{h:.1}"))
}

fn share(value: Option<f64>) -> String {
    value.map_or_else(String::new, |s| format!("{:.0} %", s * 100.0))
}

fn row(quarter: Quarter, group: &GroupFigures) -> Vec<String> {
    let f = &group.figures;
    vec![
        quarter.to_string(),
        dimension_name(group.dimension).to_string(),
        group.key.clone().unwrap_or_else(|| {
            if group.dimension == Dimension::All {
                "all".to_string()
            } else {
                "unknown".to_string()
            }
        }),
        f.opened.to_string(),
        f.solved.to_string(),
        f.backlog.to_string(),
        hours(f.reaction.median_hours),
        hours(f.reaction.p90_hours),
        share(f.reaction.share_within_target),
        hours(f.resolution.median_hours),
        hours(f.resolution.p90_hours),
        share(f.resolution.share_within_target),
        group.forwarded.opened.to_string(),
        hours(group.forwarded.resolution.median_hours),
        group
            .tickets_per_100_devices
            .map_or_else(String::new, |rate| format!("{rate:.1}")),
    ]
}

/// The table (the period per group, and the overall figures per quarter) or CSV (every
/// quarter and group) or JSON (the whole report).
pub fn write_report<W: std::io::Write>(
    mut out: W,
    report: &TicketReport,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Json => super::reports::json(&mut out, report)?,
        Format::Csv => {
            let rows = report.figures.quarters.iter().flat_map(|quarter| {
                quarter
                    .groups
                    .iter()
                    .map(move |group| row(quarter.quarter, group))
            });
            bestand_core::tabular::write_csv(&mut out, &HEADERS, rows)?;
        }
        _ => {
            writeln!(
                out,
                "Tickets of {}, {} ({} tickets read, {} devices in the fleet; times in service hours)",
                report.authority, report.period, report.tickets_read, report.fleet_devices
            )?;
            let overall: Vec<Vec<String>> = report
                .figures
                .quarters
                .iter()
                .flat_map(|quarter| {
                    quarter
                        .groups
                        .iter()
                        .filter(|group| group.dimension == Dimension::All)
                        .map(move |group| row(quarter.quarter, group))
                })
                .collect();
            writeln!(out, "{}", crate::output::table(HEADERS.to_vec(), overall))?;
            if let Some(period) = report.figures.quarters.last() {
                let rows: Vec<Vec<String>> = period
                    .groups
                    .iter()
                    .filter(|group| group.dimension != Dimension::All && group_has_tickets(group))
                    .map(|group| row(period.quarter, group))
                    .collect();
                writeln!(
                    out,
                    "\n{} by school, provider, model, age, topic and priority",
                    period.quarter
                )?;
                writeln!(out, "{}", crate::output::table(HEADERS.to_vec(), rows))?;
            }
        }
    }
    Ok(())
}

fn group_has_tickets(group: &GroupFigures) -> bool {
    let f: &Figures = &group.figures;
    f.opened + f.solved + f.backlog > 0
}

fn decimal(value: f64) -> Decimal {
    Decimal::from_f64(value).unwrap_or_default().round_dp(2)
}

fn number(value: Option<f64>) -> Cell {
    value.map_or(Cell::Empty, |v| Cell::Number(decimal(v)))
}

/// The workbook: the figures of every quarter and group, the topic volume, and one chart
/// sheet per figure over the quarters.
pub fn workbook(report: &TicketReport) -> Workbook {
    let columns = vec![
        Column {
            header: "Quartal".to_string(),
            kind: ColumnKind::Text,
        },
        Column {
            header: "Sicht".to_string(),
            kind: ColumnKind::Text,
        },
        Column {
            header: "Gruppe".to_string(),
            kind: ColumnKind::Text,
        },
        Column {
            header: "Eröffnet".to_string(),
            kind: ColumnKind::Integer,
        },
        Column {
            header: "Gelöst".to_string(),
            kind: ColumnKind::Integer,
        },
        Column {
            header: "Rückstand".to_string(),
            kind: ColumnKind::Integer,
        },
        Column {
            header: "Reaktion Median (h)".to_string(),
            kind: ColumnKind::Decimal,
        },
        Column {
            header: "Reaktion 90 % (h)".to_string(),
            kind: ColumnKind::Decimal,
        },
        Column {
            header: "Reaktion im Ziel".to_string(),
            kind: ColumnKind::Percent,
        },
        Column {
            header: "Lösung Median (h)".to_string(),
            kind: ColumnKind::Decimal,
        },
        Column {
            header: "Lösung 90 % (h)".to_string(),
            kind: ColumnKind::Decimal,
        },
        Column {
            header: "Lösung im Ziel".to_string(),
            kind: ColumnKind::Percent,
        },
        Column {
            header: "Weitergeleitet".to_string(),
            kind: ColumnKind::Integer,
        },
        Column {
            header: "Weitergeleitet: Lösung Median (h)".to_string(),
            kind: ColumnKind::Decimal,
        },
        Column {
            header: "Je 100 Geräte".to_string(),
            kind: ColumnKind::Decimal,
        },
    ];
    let rows = report
        .figures
        .quarters
        .iter()
        .flat_map(|quarter| {
            quarter.groups.iter().map(move |group| {
                let f = &group.figures;
                vec![
                    Cell::Text(quarter.quarter.to_string()),
                    Cell::Text(german_dimension(group.dimension).to_string()),
                    Cell::Text(group.key.clone().unwrap_or_else(|| "–".to_string())),
                    Cell::Integer(f.opened as i64),
                    Cell::Integer(f.solved as i64),
                    Cell::Integer(f.backlog as i64),
                    number(f.reaction.median_hours),
                    number(f.reaction.p90_hours),
                    number(f.reaction.share_within_target),
                    number(f.resolution.median_hours),
                    number(f.resolution.p90_hours),
                    number(f.resolution.share_within_target),
                    Cell::Integer(group.forwarded.opened as i64),
                    number(group.forwarded.resolution.median_hours),
                    number(group.tickets_per_100_devices),
                ]
            })
        })
        .collect();
    let topics = Sheet {
        name: "Themen".to_string(),
        columns: vec![
            Column {
                header: "Quartal".to_string(),
                kind: ColumnKind::Text,
            },
            Column {
                header: "Thema".to_string(),
                kind: ColumnKind::Text,
            },
            Column {
                header: "Eröffnet".to_string(),
                kind: ColumnKind::Integer,
            },
        ],
        rows: report
            .figures
            .topic_volume
            .iter()
            .map(|volume| {
                vec![
                    Cell::Text(volume.quarter.to_string()),
                    Cell::Text(volume.topic.clone().unwrap_or_else(|| "–".to_string())),
                    Cell::Integer(volume.opened as i64),
                ]
            })
            .collect(),
    };
    Workbook {
        sheets: vec![
            Sheet {
                name: "Kennzahlen".to_string(),
                columns,
                rows,
            },
            topics,
        ],
        charts: charts(report)
            .into_iter()
            .map(|(name, chart)| ChartSheet {
                name: chart_sheet_name(name).to_string(),
                chart,
            })
            .collect(),
    }
}

fn german_dimension(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::All => "gesamt",
        Dimension::School => "Schule",
        Dimension::Provider => "Dienstleister",
        Dimension::Model => "Modell",
        Dimension::AgeYear => "Alter (Jahre)",
        Dimension::Topic => "Thema",
        Dimension::Priority => "Priorität",
    }
}

fn chart_sheet_name(file: &str) -> &'static str {
    match file {
        "tickets" => "Diagramm Tickets",
        "reaktion" => "Diagramm Reaktion",
        "loesung" => "Diagramm Lösung",
        "zielerreichung" => "Diagramm Ziel",
        "themen" => "Diagramm Themen",
        "modelle" => "Diagramm Modelle",
        _ => "Diagramm Alter",
    }
}

/// One chart per figure over the report's quarters, each with the file name it gets as SVG.
pub fn charts(report: &TicketReport) -> Vec<(&'static str, Chart)> {
    let labels: Vec<String> = report.quarters.iter().map(Quarter::to_string).collect();
    let overall: Vec<&GroupFigures> = report
        .figures
        .quarters
        .iter()
        .filter_map(|quarter| {
            quarter
                .groups
                .iter()
                .find(|group| group.dimension == Dimension::All)
        })
        .collect();
    let series = |name: &str, value: &dyn Fn(&GroupFigures) -> Option<f64>| Series {
        name: name.to_string(),
        values: overall
            .iter()
            .map(|group| value(group).map(decimal))
            .collect(),
    };
    let chart = |title: &str, kind: ChartKind, y_title: &str, series: Vec<Series>| Chart {
        title: format!("{title}, {}", report.authority),
        kind,
        x_title: "Quartal".to_string(),
        y_title: y_title.to_string(),
        categories: labels.clone(),
        series,
        y_is_money: false,
    };
    let mut charts = vec![
        (
            "tickets",
            chart(
                "Tickets je Quartal",
                ChartKind::Column,
                "Tickets",
                vec![
                    series("eröffnet", &|g| Some(g.figures.opened as f64)),
                    series("gelöst", &|g| Some(g.figures.solved as f64)),
                    series("Rückstand am Quartalsende", &|g| {
                        Some(g.figures.backlog as f64)
                    }),
                ],
            ),
        ),
        (
            "reaktion",
            chart(
                "Reaktionszeit in Servicestunden",
                ChartKind::Line,
                "Stunden",
                vec![
                    series("Median", &|g| g.figures.reaction.median_hours),
                    series("90 %", &|g| g.figures.reaction.p90_hours),
                    series("weitergeleitet, Median", &|g| {
                        g.forwarded.reaction.median_hours
                    }),
                ],
            ),
        ),
        (
            "loesung",
            chart(
                "Lösungszeit in Servicestunden",
                ChartKind::Line,
                "Stunden",
                vec![
                    series("Median", &|g| g.figures.resolution.median_hours),
                    series("90 %", &|g| g.figures.resolution.p90_hours),
                    series("weitergeleitet, Median", &|g| {
                        g.forwarded.resolution.median_hours
                    }),
                ],
            ),
        ),
        (
            "zielerreichung",
            chart(
                "Anteil im Ziel (%)",
                ChartKind::Line,
                "Prozent",
                vec![
                    series("Reaktion", &|g| {
                        g.figures.reaction.share_within_target.map(|s| s * 100.0)
                    }),
                    series("Lösung", &|g| {
                        g.figures.resolution.share_within_target.map(|s| s * 100.0)
                    }),
                ],
            ),
        ),
    ];
    let topics: std::collections::BTreeSet<String> = report
        .figures
        .topic_volume
        .iter()
        .map(|volume| volume.topic.clone().unwrap_or_else(|| "–".to_string()))
        .collect();
    let topic_series = topics
        .iter()
        .map(|topic| Series {
            name: topic.clone(),
            values: report
                .quarters
                .iter()
                .map(|quarter| {
                    let opened: u64 = report
                        .figures
                        .topic_volume
                        .iter()
                        .filter(|v| {
                            v.quarter == *quarter
                                && v.topic.clone().unwrap_or_else(|| "–".to_string()) == *topic
                        })
                        .map(|v| v.opened)
                        .sum();
                    Some(Decimal::from(opened))
                })
                .collect(),
        })
        .collect();
    charts.push((
        "themen",
        chart(
            "Tickets nach Thema",
            ChartKind::StackedColumn,
            "Tickets",
            topic_series,
        ),
    ));
    charts.push((
        "modelle",
        chart(
            "Tickets je 100 Geräte nach Modell",
            ChartKind::Line,
            "Tickets je 100 Geräte",
            rate_series(report, Dimension::Model),
        ),
    ));
    charts.push((
        "alter",
        chart(
            "Tickets je 100 Geräte nach Gerätealter (Jahre)",
            ChartKind::Line,
            "Tickets je 100 Geräte",
            rate_series(report, Dimension::AgeYear),
        ),
    ));
    charts
}

/// Tickets per 100 devices per quarter for the six groups of `dimension` with the most tickets
/// over the quarters (more lines cannot be told apart).
fn rate_series(report: &TicketReport, dimension: Dimension) -> Vec<Series> {
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    for quarter in &report.figures.quarters {
        for group in quarter.groups.iter().filter(|g| g.dimension == dimension) {
            if let (Some(key), Some(_)) = (&group.key, group.devices) {
                *totals.entry(key.clone()).or_default() += group.figures.opened;
            }
        }
    }
    let mut keys: Vec<(String, u64)> = totals.into_iter().filter(|(_, n)| *n > 0).collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    keys.truncate(6);
    keys.into_iter()
        .map(|(key, _)| Series {
            name: if dimension == Dimension::AgeYear {
                format!("{key} Jahre")
            } else {
                key.clone()
            },
            values: report
                .figures
                .quarters
                .iter()
                .map(|quarter| {
                    quarter
                        .groups
                        .iter()
                        .find(|g| g.dimension == dimension && g.key.as_deref() == Some(&key))
                        .and_then(|g| g.tickets_per_100_devices)
                        .map(decimal)
                })
                .collect(),
        })
        .collect()
}

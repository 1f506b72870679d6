//! The ticket figures against a small set of tickets whose service times, counts, medians and
//! percentiles are worked out by hand in the comments.

use super::*;
use crate::service_level::{berlin as at, Land};

fn device(model: &str, age: u32) -> TicketDevice {
    TicketDevice {
        model: Some(model.to_string()),
        age_years: Some(age),
    }
}

fn ticket(created: DateTime<Utc>, priority: &str, school: &str) -> TicketFacts {
    TicketFacts {
        created,
        state: TicketState::Open,
        priority: Some(priority.to_string()),
        school: Some(school.to_string()),
        ..Default::default()
    }
}

fn closed(mut fact: TicketFacts, at: DateTime<Utc>) -> TicketFacts {
    fact.state = TicketState::Closed;
    fact.closed = Some(at);
    fact
}

/// Service sheet in NRW (Mon–Thu 08–16, Fri 08–13). In June 2026 no holiday falls on
/// 8–16 June; Karfreitag 3.4. and Ostermontag 6.4. are closed.
fn tickets() -> Vec<TicketFacts> {
    const HIGH: &str = "3 high";
    const NORMAL: &str = "2 normal";
    let mut t1 = ticket(at(2026, 6, 8, 8, 0), HIGH, "GSA");
    // Mon 08:00 → 09:00 = 1 h reaction, → 10:00 = 2 h resolution.
    t1.first_response = Some(at(2026, 6, 8, 9, 0));
    t1.topic = Some("network".into());
    t1.devices = vec![device("iPad 9", 2)];
    let t1 = closed(t1, at(2026, 6, 8, 10, 0));

    let mut t2 = ticket(at(2026, 6, 9, 8, 0), HIGH, "GSA");
    // Tue 08:00 → 10:00 = 2 h reaction; → Wed 12:00 = Tue 8 h + Wed 4 h = 12 h resolution.
    t2.first_response = Some(at(2026, 6, 9, 10, 0));
    t2.topic = Some("end devices".into());
    t2.devices = vec![device("iPad 9", 3)];
    let t2 = closed(t2, at(2026, 6, 10, 12, 0));

    let mut t3 = ticket(at(2026, 6, 11, 15, 0), NORMAL, "RS");
    // Thu 15:00 → Fri 12:00 = Thu 1 h + Fri 4 h = 5 h reaction; still open.
    t3.first_response = Some(at(2026, 6, 12, 12, 0));
    t3.topic = Some("network".into());

    let mut t4 = ticket(at(2026, 6, 12, 12, 30), NORMAL, "RS");
    // The case: Fri 12:30 → Mon 09:00 = 0.5 + 1 = 1.5 h reaction; solved Mon 16:00 =
    // 0.5 + 8 = 8.5 h. Forwarded Mon 08:00: reaction from forwarding 1 h, resolution 8 h.
    t4.first_response = Some(at(2026, 6, 15, 9, 0));
    t4.forwarded_at = Some(at(2026, 6, 15, 8, 0));
    t4.provider = Some("NetCo".into());
    t4.topic = Some("network".into());
    t4.devices = vec![device("Latitude 5440", 3)];
    let t4 = closed(t4, at(2026, 6, 15, 16, 0));

    // Merged into another ticket: counts nowhere.
    let mut t5 = ticket(at(2026, 6, 10, 9, 0), HIGH, "GSA");
    t5.merged = true;
    t5.state = TicketState::Merged;
    t5.devices = vec![device("iPad 9", 3)];

    // Opened in Q1, never answered, still open: Q1 and Q2 backlog.
    let t6 = ticket(at(2026, 3, 2, 8, 0), HIGH, "GSA");

    let mut t7 = ticket(at(2026, 3, 16, 8, 0), NORMAL, "GSA");
    // Q1 reaction 2 h. Solved Tue 7 April 09:00: 16–20 March 37 h (4×8 + 5), 23–27 March
    // 37 h, 30 March–2 April 32 h, Karfreitag and Ostermontag closed, 7 April 1 h: 107 h.
    t7.first_response = Some(at(2026, 3, 16, 10, 0));
    let t7 = closed(t7, at(2026, 4, 7, 9, 0));

    // Reopened: an old closing time but open again, so not solved; reaction 0.5 h.
    let mut t8 = ticket(at(2026, 6, 16, 8, 0), HIGH, "GSA");
    t8.first_response = Some(at(2026, 6, 16, 8, 30));
    t8.closed = Some(at(2026, 6, 16, 10, 0));

    vec![t1, t2, t3, t4, t5, t6, t7, t8]
}

fn targets() -> ServiceTargets {
    ServiceTargets {
        targets: vec![
            PriorityTarget {
                priority: "3 High".into(),
                reaction: Some(Duration::hours(1)),
                resolution: Some(Duration::hours(8)),
            },
            PriorityTarget {
                priority: "2 normal".into(),
                reaction: Some(Duration::hours(4)),
                resolution: Some(Duration::hours(16)),
            },
        ],
    }
}

fn devices() -> DeviceCounts {
    DeviceCounts {
        by_model: [("iPad 9".to_string(), 40)].into(),
        by_age_year: [(2, 20), (3, 50)].into(),
    }
}

fn report() -> TicketFigures {
    let quarters = "2026-Q2".parse::<Quarter>().unwrap().last(2);
    ticket_figures(
        &tickets(),
        &ServiceCalendar::service_sheet(Land::NordrheinWestfalen),
        &targets(),
        &quarters,
        &devices(),
    )
}

fn group<'a>(
    quarter: &'a QuarterFigures,
    dimension: Dimension,
    key: Option<&str>,
) -> &'a GroupFigures {
    quarter
        .groups
        .iter()
        .find(|group| group.dimension == dimension && group.key.as_deref() == key)
        .unwrap_or_else(|| panic!("no group {dimension:?} {key:?}"))
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a value");
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

#[test]
fn counts_medians_percentiles_and_targets_of_a_quarter() {
    let report = report();
    let q2 = &report.quarters[1];
    assert_eq!(q2.quarter.to_string(), "2026-Q2");
    let all = &group(q2, Dimension::All, None).figures;
    // Opened T1 T2 T3 T4 T8 (T5 merged); solved T1 T2 T4 T7 (T8 reopened); backlog T3 T6 T8.
    assert_eq!((all.opened, all.solved, all.backlog), (5, 4, 3));
    // Reaction of the tickets opened in Q2: [0.5, 1, 1.5, 2, 5] h. Median: rank 0.5·4 = 2 →
    // 1.5 h. P90: rank 0.9·4 = 3.6 → 2 + 0.6·(5 − 2) = 3.8 h.
    assert_eq!(all.reaction.measured, 5);
    close(all.reaction.median_hours, 1.5);
    close(all.reaction.p90_hours, 3.8);
    // Within target: T1 (1 ≤ 1 high), T4 (1.5 ≤ 4 normal), T8 (0.5 ≤ 1); not T2 (2 > 1),
    // T3 (5 > 4): 3 of 5.
    assert_eq!(
        (all.reaction.within_target, all.reaction.with_target),
        (3, 5)
    );
    close(all.reaction.share_within_target, 0.6);
    // Resolution of the tickets solved in Q2: [2, 8.5, 12, 107] h. Median: rank 1.5 →
    // 8.5 + 0.5·3.5 = 10.25 h. P90: rank 2.7 → 12 + 0.7·95 = 78.5 h. Within target: T1
    // (2 ≤ 8), T4 (8.5 ≤ 16); not T2 (12 > 8), T7 (107 > 16): 2 of 4.
    close(all.resolution.median_hours, 10.25);
    close(all.resolution.p90_hours, 78.5);
    close(all.resolution.share_within_target, 0.5);

    // Forwarded: only T4, measured from Mon 08:00: reaction 1 h, resolution 8 h.
    let forwarded = &group(q2, Dimension::All, None).forwarded;
    assert_eq!(
        (forwarded.opened, forwarded.solved, forwarded.backlog),
        (1, 1, 0)
    );
    close(forwarded.reaction.median_hours, 1.0);
    close(forwarded.resolution.p90_hours, 8.0);
    close(forwarded.resolution.share_within_target, 1.0);

    // Q1: opened T6 T7, nothing solved, both in the backlog at its end (T7 solved in April);
    // reaction T7 2 h.
    let q1 = &group(&report.quarters[0], Dimension::All, None).figures;
    assert_eq!((q1.opened, q1.solved, q1.backlog), (2, 0, 2));
    close(q1.reaction.median_hours, 2.0);
    assert_eq!(q1.resolution.median_hours, None);
}

#[test]
fn groups_split_by_school_provider_model_age_topic_and_priority() {
    let report = report();
    let q2 = &report.quarters[1];
    // GSA: opened T1 T2 T8, solved T1 T2 T7, backlog T6 T8. RS: opened T3 T4, solved T4,
    // backlog T3.
    let gsa = &group(q2, Dimension::School, Some("GSA")).figures;
    assert_eq!((gsa.opened, gsa.solved, gsa.backlog), (3, 3, 2));
    let rs = &group(q2, Dimension::School, Some("RS")).figures;
    assert_eq!((rs.opened, rs.solved, rs.backlog), (2, 1, 1));
    // The provider NetCo has T4; the rest name none.
    assert_eq!(
        group(q2, Dimension::Provider, Some("NetCo")).figures.opened,
        1
    );
    assert_eq!(group(q2, Dimension::Provider, None).figures.opened, 4);
    // iPad 9: T1 T2 opened (T5 merged), 40 devices: 2 · 100 / 40 = 5 per 100.
    let ipad = group(q2, Dimension::Model, Some("iPad 9"));
    assert_eq!((ipad.figures.opened, ipad.devices), (2, Some(40)));
    close(ipad.tickets_per_100_devices, 5.0);
    // A model without a device count: no rate.
    let latitude = group(q2, Dimension::Model, Some("Latitude 5440"));
    assert_eq!(
        (latitude.devices, latitude.tickets_per_100_devices),
        (Some(0), None)
    );
    // Age 3: T2 T4, 50 devices: 4 per 100; age 2: T1, 20 devices: 5 per 100.
    close(
        group(q2, Dimension::AgeYear, Some("3")).tickets_per_100_devices,
        4.0,
    );
    close(
        group(q2, Dimension::AgeYear, Some("2")).tickets_per_100_devices,
        5.0,
    );
    // Priority 3 high: reaction [0.5, 1, 2] h: median 1, p90 rank 1.8 → 1 + 0.8·1 = 1.8.
    let high = &group(q2, Dimension::Priority, Some("3 high")).figures;
    close(high.reaction.median_hours, 1.0);
    close(high.reaction.p90_hours, 1.8);
    // Volume by topic: network T1 T3 T4, end devices T2, unknown T8.
    let volume: Vec<(String, Option<&str>, u64)> = report
        .topic_volume
        .iter()
        .map(|v| (v.quarter.to_string(), v.topic.as_deref(), v.opened))
        .collect();
    assert_eq!(
        volume,
        [
            ("2026-Q1".to_string(), None, 2),
            ("2026-Q1".to_string(), Some("end devices"), 0),
            ("2026-Q1".to_string(), Some("network"), 0),
            ("2026-Q2".to_string(), None, 1),
            ("2026-Q2".to_string(), Some("end devices"), 1),
            ("2026-Q2".to_string(), Some("network"), 3),
        ]
    );
}

#[test]
fn the_output_order_is_fixed_and_the_same_in_every_quarter() {
    let report = report();
    let keys = |quarter: &QuarterFigures| -> Vec<(Dimension, Option<String>)> {
        quarter
            .groups
            .iter()
            .map(|group| (group.dimension, group.key.clone()))
            .collect()
    };
    let q2 = keys(&report.quarters[1]);
    assert_eq!(keys(&report.quarters[0]), q2);
    let expected: Vec<(Dimension, Option<String>)> = [
        (Dimension::All, None),
        (Dimension::School, Some("GSA")),
        (Dimension::School, Some("RS")),
        (Dimension::Provider, None),
        (Dimension::Provider, Some("NetCo")),
        (Dimension::Model, None),
        (Dimension::Model, Some("Latitude 5440")),
        (Dimension::Model, Some("iPad 9")),
        (Dimension::AgeYear, None),
        (Dimension::AgeYear, Some("2")),
        (Dimension::AgeYear, Some("3")),
        (Dimension::Topic, None),
        (Dimension::Topic, Some("end devices")),
        (Dimension::Topic, Some("network")),
        (Dimension::Priority, Some("2 normal")),
        (Dimension::Priority, Some("3 high")),
    ]
    .into_iter()
    .map(|(dimension, key)| (dimension, key.map(str::to_string)))
    .collect();
    assert_eq!(q2, expected);
    // The input order does not matter.
    let mut reversed = tickets();
    reversed.reverse();
    let again = ticket_figures(
        &reversed,
        &ServiceCalendar::service_sheet(Land::NordrheinWestfalen),
        &targets(),
        &"2026-Q2".parse::<Quarter>().unwrap().last(2),
        &devices(),
    );
    assert_eq!(again, report);
    let json = serde_json::to_value(&report.quarters[1].groups[0]).unwrap();
    assert_eq!(json["dimension"], "all");
    assert_eq!(json["figures"]["opened"], 5);
}

#[test]
fn percentiles_interpolate_linearly_like_excel() {
    // [1, 2, 3, 4]: median rank 1.5 → 2.5; p90 rank 2.7 → 3 + 0.7 = 3.7 (PERCENTILE.INC).
    assert_eq!(percentile(&[1, 2, 3, 4], 0.5), Some(2.5));
    close(percentile(&[1, 2, 3, 4], 0.9), 3.7);
    // Ten values 1..=10: p90 rank 8.1 → 9 + 0.1 = 9.1.
    let ten: Vec<i64> = (1..=10).collect();
    close(percentile(&ten, 0.9), 9.1);
    assert_eq!(percentile(&[7], 0.9), Some(7.0));
    assert_eq!(percentile(&[], 0.5), None);
}

#[test]
fn the_replacement_feed_flags_cohorts_above_the_threshold() {
    let mut facts = tickets();
    // Before the four quarters 2025-Q3..2026-Q2: not counted.
    let mut old = ticket(at(2025, 6, 30, 10, 0), "2 normal", "GSA");
    old.devices = vec![device("iPad 9", 3)];
    // Two iPads of the same cohort in one ticket count once.
    let mut pair = ticket(at(2025, 9, 1, 10, 0), "2 normal", "GSA");
    pair.devices = vec![device("iPad 9", 3), device("iPad 9", 3)];
    facts.extend([old, pair]);
    let cohorts: BTreeMap<(String, u32), u64> = [
        (("iPad 9".to_string(), 2), 10),
        (("iPad 9".to_string(), 3), 4),
        (("Tablet X".to_string(), 1), 5),
    ]
    .into();
    let feed = replacement_feed(&facts, &cohorts, "2026-Q2".parse().unwrap(), 0.4);
    type Row<'a> = (&'a str, u32, u64, u64, Option<f64>, bool);
    let rows: Vec<Row> = feed
        .iter()
        .map(|c| {
            (
                c.model.as_str(),
                c.age_years,
                c.tickets,
                c.devices,
                c.tickets_per_device,
                c.exceeds,
            )
        })
        .collect();
    // Latitude 5440/3: T4, no devices known. iPad 9/2: T1, 1/10 = 0.1. iPad 9/3: T2 and the
    // pair (T5 merged, the old one outside), 2/4 = 0.5 > 0.4. Tablet X/1: 0/5.
    assert_eq!(
        rows,
        [
            ("Latitude 5440", 3, 1, 0, None, false),
            ("Tablet X", 1, 0, 5, Some(0.0), false),
            ("iPad 9", 2, 1, 10, Some(0.1), false),
            ("iPad 9", 3, 2, 4, Some(0.5), true),
        ]
    );
}

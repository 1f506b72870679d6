//! The ticket-figures benchmark that `cargo xtask bench --ticket-figures` runs in release mode:
//! it generates N plausible ticket facts (deterministic, no database) and times the quarterly
//! figures over the last eight quarters and the replacement feed, as the ticket report will
//! call them. It lives in `bestand-app` because the core may not read a clock.

use std::collections::BTreeMap;
use std::time::Instant;

use bestand_core::service_level::{
    replacement_feed, ticket_figures, DeviceCounts, Land, PriorityTarget, Quarter, ServiceCalendar,
    ServiceTargets, TicketDevice, TicketFacts, TicketState,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// xorshift64*: deterministic figures without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MODELS: [&str; 20] = [
    "iPad 9",
    "iPad 10",
    "iPad Air 5",
    "Latitude 3440",
    "Latitude 5440",
    "ThinkPad L14",
    "ThinkPad E14",
    "ProBook 450",
    "EliteBook 840",
    "OptiPlex 7010",
    "ThinkCentre M70q",
    "Surface Go 3",
    "Chromebook 314",
    "MacBook Air M1",
    "MacBook Air M2",
    "Galaxy Tab S6",
    "Galaxy Tab A8",
    "Yoga 11e",
    "TravelMate B3",
    "Veriton X",
];
const TOPICS: [&str; 6] = [
    "network",
    "school server",
    "end devices",
    "software",
    "telephony",
    "peripherals",
];
const PRIORITIES: [&str; 3] = ["1 low", "2 normal", "3 high"];
const PROVIDERS: [&str; 4] = ["NetCo", "Schul-IT GmbH", "Druckerservice", "Telefonie AG"];

fn facts(count: usize) -> Vec<TicketFacts> {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let first: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 10, 1, 6, 0, 0).unwrap();
    let span_minutes = 2 * 365 * 24 * 60;
    let schools: Vec<String> = (1..=60).map(|n| format!("Schule {n:02}")).collect();
    (0..count)
        .map(|_| {
            let created = first + Duration::minutes(random.below(span_minutes) as i64);
            let first_response = (random.below(10) < 9)
                .then(|| created + Duration::minutes(random.below(48 * 60) as i64));
            let closed = random.below(10) < 9;
            let closed_at =
                closed.then(|| created + Duration::minutes(random.below(30 * 24 * 60) as i64));
            let forwarded_at = (random.below(5) == 0)
                .then(|| created + Duration::minutes(random.below(24 * 60) as i64));
            let devices = (0..random.below(3))
                .map(|_| TicketDevice {
                    model: Some(MODELS[random.below(20) as usize].to_string()),
                    age_years: Some(random.below(9) as u32),
                })
                .collect();
            TicketFacts {
                created,
                first_response,
                closed: closed_at,
                forwarded_at,
                state: if closed {
                    TicketState::Closed
                } else {
                    TicketState::Open
                },
                priority: Some(PRIORITIES[random.below(3) as usize].to_string()),
                topic: Some(TOPICS[random.below(6) as usize].to_string()),
                school: Some(schools[random.below(60) as usize].clone()),
                provider: forwarded_at.map(|_| PROVIDERS[random.below(4) as usize].to_string()),
                devices,
                merged: random.below(100) == 0,
            }
        })
        .collect()
}

fn main() {
    let count: usize = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 500_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: ticket_figures [N]");
            std::process::exit(2);
        }
    };
    let facts = facts(count);
    let mut calendar = ServiceCalendar::service_sheet(Land::NordrheinWestfalen);
    for range in ["2025-07-14..2025-08-26", "2026-07-20..2026-09-01"] {
        calendar
            .school_holidays
            .push(range.parse().expect("a range"));
    }
    let target = |priority: &str, reaction, resolution| PriorityTarget {
        priority: priority.to_string(),
        reaction: Some(Duration::hours(reaction)),
        resolution: Some(Duration::hours(resolution)),
    };
    let targets = ServiceTargets {
        targets: vec![
            target("3 high", 1, 8),
            target("2 normal", 4, 16),
            target("1 low", 8, 40),
        ],
    };
    let mut devices = DeviceCounts::default();
    let mut cohorts = BTreeMap::new();
    for (index, model) in MODELS.iter().enumerate() {
        devices
            .by_model
            .insert(model.to_string(), 500 + index as u64 * 100);
        for age in 0..9 {
            cohorts.insert((model.to_string(), age), 60 + u64::from(age) * 10);
        }
    }
    for age in 0..9 {
        devices.by_age_year.insert(age, 3000 - u64::from(age) * 200);
    }
    let period: Quarter = "2026-Q3".parse().expect("a quarter");
    let quarters = period.last(8);

    let began = Instant::now();
    let figures = ticket_figures(&facts, &calendar, &targets, &quarters, &devices);
    let figures_time = began.elapsed();
    let began = Instant::now();
    let feed = replacement_feed(&facts, &cohorts, period, 0.5);
    let feed_time = began.elapsed();

    let groups: usize = figures.quarters.iter().map(|q| q.groups.len()).sum();
    let opened = figures
        .quarters
        .last()
        .and_then(|q| q.groups.first())
        .map_or(0, |all| all.figures.opened);
    println!(
        "ticket figures: {count} tickets, {} quarters, {groups} groups: {:.3} s \
         ({opened} opened in {period})",
        quarters.len(),
        figures_time.as_secs_f64()
    );
    println!(
        "replacement feed: {} cohorts: {:.3} s",
        feed.len(),
        feed_time.as_secs_f64()
    );
}

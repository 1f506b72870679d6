//! The ticket figures per quarter and group (school, provider, device model, device age, topic,
//! priority): opened, solved, backlog, reaction and resolution time in service hours (median
//! and 90th percentile), the share within the agreed targets, the same measured from
//! forwarding to a provider, volume by topic, tickets per 100 devices, and the replacement feed
//! for the procurement forecast.
//!
//! One pass lays out each ticket's service times on a `ServiceTimeline` and its groups as
//! small integers, then each quarter is a scan over plain numbers, so 500,000 tickets take well
//! under the two seconds the report may use (docs/performance.md).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Quarter, ServiceCalendar, ServiceTimeline};
use crate::clock::school_date;
use bestand_model::ticket::TicketState;

/// What the figures need of one ticket; the report reads these from the ticket store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketFacts {
    pub created: DateTime<Utc>,
    pub first_response: Option<DateTime<Utc>>,
    /// When it was solved or closed; only counts while `state` is `Closed` (a reopened ticket
    /// is not solved, whatever its old closing time).
    pub closed: Option<DateTime<Utc>>,
    /// When it went to a provider, if it did.
    pub forwarded_at: Option<DateTime<Utc>>,
    pub state: TicketState,
    /// As the ticket system names it ("3 high"); matched to `ServiceTargets` ignoring case.
    pub priority: Option<String>,
    pub topic: Option<String>,
    pub school: Option<String>,
    pub provider: Option<String>,
    /// The linked devices, each with its model and its age in whole years when the ticket was
    /// opened.
    pub devices: Vec<TicketDevice>,
    /// Merged into another ticket: counted only as that target, so left out here.
    pub merged: bool,
}

/// One device linked to a ticket, as the figures see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketDevice {
    pub model: Option<String>,
    pub age_years: Option<u32>,
}

/// The agreed targets for one priority, in service time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityTarget {
    pub priority: String,
    pub reaction: Option<Duration>,
    pub resolution: Option<Duration>,
}

/// The targets per priority (`[authority.service_hours] targets`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTargets {
    pub targets: Vec<PriorityTarget>,
}

impl ServiceTargets {
    pub fn for_priority(&self, priority: &str) -> Option<&PriorityTarget> {
        let priority = priority.trim();
        self.targets
            .iter()
            .find(|target| target.priority.trim().eq_ignore_ascii_case(priority))
    }
}

/// Device counts for the rates per 100 devices: by model, and by age in whole years.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCounts {
    pub by_model: BTreeMap<String, u64>,
    pub by_age_year: BTreeMap<u32, u64>,
}

/// What a group of figures is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Every ticket.
    All,
    School,
    Provider,
    Model,
    AgeYear,
    Topic,
    Priority,
}

/// A time figure in service hours over the tickets it measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimeFigures {
    /// Tickets measured.
    pub measured: u64,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    /// Measured tickets whose priority has a target for this figure.
    pub with_target: u64,
    pub within_target: u64,
    /// `within_target / with_target`, as a fraction.
    pub share_within_target: Option<f64>,
}

/// The figures of one group in one quarter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Opened in the quarter (for forwarded figures: forwarded in it).
    pub opened: u64,
    /// Solved in the quarter.
    pub solved: u64,
    /// Opened (forwarded) before the quarter's end and not solved by then.
    pub backlog: u64,
    /// Opened until first response, over the tickets opened in the quarter that have one
    /// (forwarded: from forwarding, where the first response came after it).
    pub reaction: TimeFigures,
    /// Opened until solved, over the tickets solved in the quarter (forwarded: from
    /// forwarding).
    pub resolution: TimeFigures,
}

/// One group's figures in one quarter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupFigures {
    pub dimension: Dimension,
    /// The school, provider, model, age in years, topic or priority; `None` for `All`, and
    /// for tickets that name none ("unknown").
    pub key: Option<String>,
    pub figures: Figures,
    /// The same for the tickets forwarded to a provider, measured from forwarding.
    pub forwarded: Figures,
    /// For `Model` and `AgeYear`: the devices in the group and the tickets opened per 100.
    pub devices: Option<u64>,
    pub tickets_per_100_devices: Option<f64>,
}

/// All groups of one quarter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarterFigures {
    pub quarter: Quarter,
    pub groups: Vec<GroupFigures>,
}

/// Tickets opened per topic and quarter, for the volume chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicVolume {
    pub quarter: Quarter,
    pub topic: Option<String>,
    pub opened: u64,
}

/// The whole report's figures, quarters oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketFigures {
    pub quarters: Vec<QuarterFigures>,
    pub topic_volume: Vec<TopicVolume>,
}

/// A group's key, borrowed from the facts, ordered for output: unknown first, ages by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupKey<'a> {
    All,
    Unknown,
    Age(u32),
    Text(&'a str),
}

impl<'a> GroupKey<'a> {
    fn text(value: Option<&'a str>) -> GroupKey<'a> {
        match value.map(str::trim) {
            Some(text) if !text.is_empty() => GroupKey::Text(text),
            _ => GroupKey::Unknown,
        }
    }

    fn label(&self) -> Option<String> {
        match self {
            GroupKey::All | GroupKey::Unknown => None,
            GroupKey::Age(years) => Some(years.to_string()),
            GroupKey::Text(text) => Some(text.to_string()),
        }
    }
}

/// A ticket reduced to numbers: instants in UTC milliseconds, service times in milliseconds.
struct Laid {
    created: i64,
    solved: Option<i64>,
    forwarded: Option<i64>,
    reaction: Option<i64>,
    resolution: Option<i64>,
    forwarded_reaction: Option<i64>,
    forwarded_resolution: Option<i64>,
    reaction_target: Option<i64>,
    resolution_target: Option<i64>,
}

/// Group ids per ticket, interned once for every quarter.
struct Groups<'a> {
    keys: Vec<(Dimension, GroupKey<'a>)>,
    ids: HashMap<(Dimension, GroupKey<'a>), u32>,
    /// Ticket i's groups are `members[offsets[i]..offsets[i + 1]]`.
    members: Vec<u32>,
    offsets: Vec<usize>,
}

impl<'a> Groups<'a> {
    fn new() -> Groups<'a> {
        Groups {
            keys: Vec::new(),
            ids: HashMap::new(),
            members: Vec::new(),
            offsets: vec![0],
        }
    }

    fn add(&mut self, dimension: Dimension, key: GroupKey<'a>) {
        let next = self.keys.len() as u32;
        let id = *self.ids.entry((dimension, key)).or_insert(next);
        if id == next {
            self.keys.push((dimension, key));
        }
        let start = self.offsets[self.offsets.len() - 1];
        if !self.members[start..].contains(&id) {
            self.members.push(id);
        }
    }

    fn close_ticket(&mut self) {
        self.offsets.push(self.members.len());
    }

    fn of(&self, ticket: usize) -> &[u32] {
        &self.members[self.offsets[ticket]..self.offsets[ticket + 1]]
    }
}

fn lay_out(fact: &TicketFacts, timeline: &ServiceTimeline, targets: &ServiceTargets) -> Laid {
    let millis = |at: DateTime<Utc>| at.timestamp_millis();
    let created = millis(fact.created);
    let solved = match fact.state {
        TicketState::Closed => fact.closed.map(millis),
        _ => None,
    };
    let forwarded = fact.forwarded_at.map(millis);
    let response = fact.first_response.map(millis);
    let span = |from: i64, to: Option<i64>| to.map(|to| timeline.duration_millis(from, to));
    let target = fact
        .priority
        .as_deref()
        .and_then(|priority| targets.for_priority(priority));
    Laid {
        created,
        solved,
        forwarded,
        reaction: span(created, response),
        resolution: span(created, solved),
        forwarded_reaction: forwarded
            .and_then(|from| span(from, response.filter(|&response| response >= from))),
        forwarded_resolution: forwarded.and_then(|from| span(from, solved)),
        reaction_target: target
            .and_then(|target| target.reaction)
            .map(|d| d.num_milliseconds()),
        resolution_target: target
            .and_then(|target| target.resolution)
            .map(|d| d.num_milliseconds()),
    }
}

fn group_ticket<'a>(groups: &mut Groups<'a>, fact: &'a TicketFacts) {
    groups.add(Dimension::All, GroupKey::All);
    groups.add(Dimension::School, GroupKey::text(fact.school.as_deref()));
    groups.add(
        Dimension::Provider,
        GroupKey::text(fact.provider.as_deref()),
    );
    if fact.devices.is_empty() {
        groups.add(Dimension::Model, GroupKey::Unknown);
        groups.add(Dimension::AgeYear, GroupKey::Unknown);
    }
    for device in &fact.devices {
        groups.add(Dimension::Model, GroupKey::text(device.model.as_deref()));
        groups.add(
            Dimension::AgeYear,
            device.age_years.map_or(GroupKey::Unknown, GroupKey::Age),
        );
    }
    groups.add(Dimension::Topic, GroupKey::text(fact.topic.as_deref()));
    groups.add(
        Dimension::Priority,
        GroupKey::text(fact.priority.as_deref()),
    );
    groups.close_ticket();
}

/// A time figure while it is collected.
#[derive(Default, Clone)]
struct TimeAcc {
    values: Vec<i64>,
    with_target: u64,
    within_target: u64,
}

impl TimeAcc {
    fn add(&mut self, value: i64, target: Option<i64>) {
        self.values.push(value);
        if let Some(target) = target {
            self.with_target += 1;
            if value <= target {
                self.within_target += 1;
            }
        }
    }

    fn finish(mut self) -> TimeFigures {
        self.values.sort_unstable();
        let hours = |millis: f64| millis / 3_600_000.0;
        TimeFigures {
            measured: self.values.len() as u64,
            median_hours: percentile(&self.values, 0.5).map(hours),
            p90_hours: percentile(&self.values, 0.9).map(hours),
            with_target: self.with_target,
            within_target: self.within_target,
            share_within_target: (self.with_target > 0)
                .then(|| self.within_target as f64 / self.with_target as f64),
        }
    }
}

#[derive(Default, Clone)]
struct FiguresAcc {
    opened: u64,
    solved: u64,
    backlog: u64,
    reaction: TimeAcc,
    resolution: TimeAcc,
}

impl FiguresAcc {
    fn finish(self) -> Figures {
        Figures {
            opened: self.opened,
            solved: self.solved,
            backlog: self.backlog,
            reaction: self.reaction.finish(),
            resolution: self.resolution.finish(),
        }
    }
}

/// The `p`-quantile of sorted values by linear interpolation between closest ranks, the
/// definition of Excel's PERCENTILE.INC (and R's type 7): rank `h = p·(n−1)` counted from 0,
/// the value `x[⌊h⌋] + (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`. `None` for no values.
fn percentile(sorted: &[i64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p * last as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = rank - below as f64;
    let low = sorted[below] as f64;
    Some(low + fraction * (sorted[above] as f64 - low))
}

fn rate(tickets: u64, devices: Option<u64>) -> Option<f64> {
    devices
        .filter(|&devices| devices > 0)
        .map(|devices| tickets as f64 * 100.0 / devices as f64)
}

/// The figures of `quarters` over `facts`, every group in every quarter (also those with no
/// tickets in it, so charts over the quarters line up), ordered by dimension and key.
pub fn ticket_figures(
    facts: &[TicketFacts],
    calendar: &ServiceCalendar,
    targets: &ServiceTargets,
    quarters: &[Quarter],
    devices: &DeviceCounts,
) -> TicketFigures {
    let counted: Vec<&TicketFacts> = facts
        .iter()
        .filter(|fact| !fact.merged && fact.state != TicketState::Merged)
        .collect();
    let timeline = timeline_for(&counted, calendar);
    let laid: Vec<Laid> = counted
        .iter()
        .map(|fact| lay_out(fact, &timeline, targets))
        .collect();
    let mut groups = Groups::new();
    for fact in &counted {
        group_ticket(&mut groups, fact);
    }
    let mut order: Vec<usize> = (0..groups.keys.len()).collect();
    order.sort_by(|&a, &b| groups.keys[a].cmp(&groups.keys[b]));

    let mut result = TicketFigures {
        quarters: Vec::with_capacity(quarters.len()),
        topic_volume: Vec::new(),
    };
    for &quarter in quarters {
        let start = quarter.start().timestamp_millis();
        let end = quarter.end().timestamp_millis();
        let within = |at: i64| start <= at && at < end;
        let mut all = vec![FiguresAcc::default(); groups.keys.len()];
        let mut forwarded = vec![FiguresAcc::default(); groups.keys.len()];
        for (index, ticket) in laid.iter().enumerate() {
            let opened = within(ticket.created);
            let solved = ticket.solved.is_some_and(within);
            let open_at_end = ticket.solved.is_none_or(|solved| solved >= end);
            let backlog = ticket.created < end && open_at_end;
            let forwarded_in = ticket.forwarded.is_some_and(within);
            let forwarded_backlog = ticket.forwarded.is_some_and(|at| at < end) && open_at_end;
            if !(opened || solved || backlog || forwarded_in || forwarded_backlog) {
                continue;
            }
            for &group in groups.of(index) {
                let acc = &mut all[group as usize];
                acc.opened += u64::from(opened);
                acc.solved += u64::from(solved);
                acc.backlog += u64::from(backlog);
                if let (true, Some(reaction)) = (opened, ticket.reaction) {
                    acc.reaction.add(reaction, ticket.reaction_target);
                }
                if let (true, Some(resolution)) = (solved, ticket.resolution) {
                    acc.resolution.add(resolution, ticket.resolution_target);
                }
                if ticket.forwarded.is_none() {
                    continue;
                }
                let acc = &mut forwarded[group as usize];
                acc.opened += u64::from(forwarded_in);
                acc.solved += u64::from(solved);
                acc.backlog += u64::from(forwarded_backlog);
                if let (true, Some(reaction)) = (forwarded_in, ticket.forwarded_reaction) {
                    acc.reaction.add(reaction, ticket.reaction_target);
                }
                if let (true, Some(resolution)) = (solved, ticket.forwarded_resolution) {
                    acc.resolution.add(resolution, ticket.resolution_target);
                }
            }
        }
        let mut all: Vec<Option<FiguresAcc>> = all.into_iter().map(Some).collect();
        let mut forwarded: Vec<Option<FiguresAcc>> = forwarded.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(order.len());
        for &id in &order {
            let (dimension, key) = &groups.keys[id];
            let figures = all[id].take().unwrap_or_default().finish();
            let device_count = match (dimension, key) {
                (Dimension::Model, GroupKey::Text(model)) => {
                    Some(devices.by_model.get(*model).copied().unwrap_or(0))
                }
                (Dimension::AgeYear, GroupKey::Age(years)) => {
                    Some(devices.by_age_year.get(years).copied().unwrap_or(0))
                }
                _ => None,
            };
            if *dimension == Dimension::Topic {
                result.topic_volume.push(TopicVolume {
                    quarter,
                    topic: key.label(),
                    opened: figures.opened,
                });
            }
            out.push(GroupFigures {
                dimension: *dimension,
                key: key.label(),
                tickets_per_100_devices: rate(figures.opened, device_count),
                devices: device_count,
                figures,
                forwarded: forwarded[id].take().unwrap_or_default().finish(),
            });
        }
        result.quarters.push(QuarterFigures {
            quarter,
            groups: out,
        });
    }
    result
}

/// A timeline over every day any of the tickets' instants falls on.
fn timeline_for(facts: &[&TicketFacts], calendar: &ServiceCalendar) -> ServiceTimeline {
    let instants = facts.iter().flat_map(|fact| {
        [
            Some(fact.created),
            fact.first_response,
            fact.closed,
            fact.forwarded_at,
        ]
        .into_iter()
        .flatten()
    });
    let (mut first, mut last) = (None, None);
    for at in instants {
        first = Some(first.map_or(at, |first: DateTime<Utc>| first.min(at)));
        last = Some(last.map_or(at, |last: DateTime<Utc>| last.max(at)));
    }
    match (first, last) {
        (Some(first), Some(last)) => {
            ServiceTimeline::new(calendar, school_date(first), school_date(last))
        }
        // No tickets: nothing will be looked up.
        _ => ServiceTimeline::new(calendar, Default::default(), Default::default()),
    }
}

/// One cohort of the replacement feed: devices of one model and age.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortTickets {
    pub model: String,
    pub age_years: u32,
    /// Tickets opened in the four quarters that name a device of the cohort.
    pub tickets: u64,
    pub devices: u64,
    /// Tickets per device over those four quarters (a year); `None` without devices.
    pub tickets_per_device: Option<f64>,
    /// Above the threshold: a candidate for early replacement.
    pub exceeds: bool,
}

/// Per (model, age in years) cohort: the tickets per device over the four quarters ending with
/// `last`, and whether that exceeds `threshold` (tickets per device and year), for the
/// procurement forecast's option to replace a cohort early. A ticket counts once per cohort it
/// names; merged tickets count as their target only. `cohort_devices` gives the devices per
/// cohort; a cohort with tickets but no devices is listed with `None`. Ordered by model, then
/// age.
pub fn replacement_feed(
    facts: &[TicketFacts],
    cohort_devices: &BTreeMap<(String, u32), u64>,
    last: Quarter,
    threshold: f64,
) -> Vec<CohortTickets> {
    let start = last.last(4)[0].start();
    let end = last.end();
    let mut tickets: BTreeMap<(String, u32), u64> = BTreeMap::new();
    let mut named: Vec<(&str, u32)> = Vec::new();
    for fact in facts {
        if fact.merged || fact.state == TicketState::Merged {
            continue;
        }
        if fact.created < start || fact.created >= end {
            continue;
        }
        named.clear();
        for device in &fact.devices {
            if let (Some(model), Some(age)) = (device.model.as_deref(), device.age_years) {
                let cohort = (model.trim(), age);
                if !model.trim().is_empty() && !named.contains(&cohort) {
                    named.push(cohort);
                }
            }
        }
        for &(model, age) in &named {
            *tickets.entry((model.to_string(), age)).or_default() += 1;
        }
    }
    let mut cohorts: BTreeMap<(String, u32), (u64, u64)> = cohort_devices
        .iter()
        .map(|(cohort, &devices)| (cohort.clone(), (0, devices)))
        .collect();
    for (cohort, count) in tickets {
        cohorts.entry(cohort).or_insert((0, 0)).0 = count;
    }
    cohorts
        .into_iter()
        .map(|((model, age_years), (tickets, devices))| {
            let per_device = (devices > 0).then(|| tickets as f64 / devices as f64);
            CohortTickets {
                model,
                age_years,
                tickets,
                devices,
                tickets_per_device: per_device,
                exceeds: per_device.is_some_and(|rate| rate > threshold),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

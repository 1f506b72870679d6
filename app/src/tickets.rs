//! The ticket keys of a `[[source]]` table (`full_read_every`, `topics`, `providers`,
//! `title_patterns`, and `school_map` for organizations): checked when the file is loaded and
//! turned into the plain values the core's ticket run takes (docs/tickets.md).

use chrono::Duration;

use bestand_core::sync::tickets::{TicketMapping, TicketSyncOptions, TOPICS};

use crate::config::{Config, SourceCommon, SourceConfig};

/// Reads a period such as `7d`, `12h`, `90m` or `2w`.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a period such as \"7d\", \"12h\" or \"2w\""))?;
    let period = match unit.trim() {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    };
    match period {
        Some(period) if n > 0 => Ok(period),
        _ => Err(format!(
            "\"{text}\" is not a period such as \"7d\", \"12h\" or \"2w\" (a positive number \
             followed by m, h, d or w)"
        )),
    }
}

/// Adds a problem naming `table` and the key for each ticket key of `common` that is wrong.
pub(crate) fn check_ticket_keys(table: &str, common: &SourceCommon, problems: &mut Vec<String>) {
    if let Some(period) = &common.full_read_every {
        if let Err(error) = parse_period(period) {
            problems.push(format!("{table}: key `full_read_every`: {error}"));
        }
    }
    for (key, topic) in &common.topics {
        if !TOPICS.contains(&topic.trim()) {
            problems.push(format!(
                "{table}: key `topics`: \"{key}\" maps to \"{topic}\", which is no topic; \
                 topics: {}",
                TOPICS.join(", ")
            ));
        }
    }
    for (key, provider) in &common.providers {
        if provider.trim().is_empty() {
            problems.push(format!(
                "{table}: key `providers`: \"{key}\" maps to an empty provider name"
            ));
        }
    }
    for pattern in &common.title_patterns {
        if let Err(error) = TicketMapping::title_pattern(pattern) {
            problems.push(format!("{table}: key `title_patterns`: {error}"));
        }
    }
}

/// The mapping of a ticket source, from its checked keys.
pub fn ticket_mapping(source: &SourceConfig) -> TicketMapping {
    let common = &source.common;
    let lowered = |map: &std::collections::BTreeMap<String, String>| {
        map.iter()
            .map(|(key, value)| (key.trim().to_lowercase(), value.trim().to_string()))
            .collect()
    };
    TicketMapping {
        topics: lowered(&common.topics),
        providers: lowered(&common.providers),
        school_map: common.school_map.clone().into_iter().collect(),
        // Checked when the file was loaded, so none is dropped here.
        title_patterns: common
            .title_patterns
            .iter()
            .filter_map(|pattern| TicketMapping::title_pattern(pattern).ok())
            .collect(),
    }
}

/// What a ticket run of `source` is asked to do.
pub fn ticket_options(
    config: &Config,
    source: &SourceConfig,
    dry_run: bool,
    force_full: bool,
) -> TicketSyncOptions {
    let defaults = TicketSyncOptions::default();
    TicketSyncOptions {
        dry_run,
        guard: config.deletion_guard(source),
        mapping: ticket_mapping(source),
        force_full,
        full_read_every: source
            .common
            .full_read_every
            .as_deref()
            .and_then(|period| parse_period(period).ok())
            .unwrap_or(defaults.full_read_every),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_people_write_them() {
        assert_eq!(parse_period("7d"), Ok(Duration::days(7)));
        assert_eq!(parse_period(" 12h "), Ok(Duration::hours(12)));
        assert_eq!(parse_period("2w"), Ok(Duration::days(14)));
        assert!(parse_period("0d").is_err());
        assert!(parse_period("7 days").is_err());
        assert!(parse_period("d").is_err());
    }
}

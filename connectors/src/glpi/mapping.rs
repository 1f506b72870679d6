//! GLPI's JSON to `TicketRecord`, pure: one ticket row of `GET /Ticket?expand_dropdowns=true`,
//! one `Item_Ticket` row, one asset row (docs/vendors/glpi.md#tickets). Only the fields the
//! figures and the asset links need are read: the ticket's `content` and every user field
//! (requester, writer, last updater) are never looked at.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use bestand_model::ticket::{TicketRecord, TicketState};

/// Why a row cannot be used at all; the page it came on fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("a row is not a JSON object")]
    NotAnObject,
    #[error("a row has no numeric `{0}`")]
    MissingId(&'static str),
    #[error("ticket {id}: `{field}` {problem}")]
    Required {
        id: String,
        field: &'static str,
        problem: String,
    },
}

/// GLPI's ticket status numbers (docs/vendors/glpi.md#status): our state and GLPI's own name.
pub fn map_status(status: i64) -> Option<(TicketState, &'static str)> {
    Some(match status {
        1 => (TicketState::New, "new"),
        2 => (TicketState::Open, "processing (assigned)"),
        3 => (TicketState::Open, "processing (planned)"),
        4 => (TicketState::Pending, "pending"),
        5 => (TicketState::Closed, "solved"),
        6 => (TicketState::Closed, "closed"),
        _ => return None,
    })
}

/// GLPI's priority numbers with the names its interface shows.
fn priority_name(priority: i64) -> Option<&'static str> {
    Some(match priority {
        1 => "1 very low",
        2 => "2 low",
        3 => "3 medium",
        4 => "4 high",
        5 => "5 very high",
        6 => "6 major",
        _ => return None,
    })
}

/// A number GLPI sends as a JSON number or, depending on the database driver, as a string.
pub fn number(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A text field; GLPI marks an empty dropdown with `""`, `"0"` or, before 10.0, `"&nbsp;"`.
pub fn text(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(text) => text.trim().to_string(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    (!matches!(text.as_str(), "" | "0" | "&nbsp;")).then_some(text)
}

/// A GLPI time (`2026-03-29 01:30:00`, local time of the server without an offset) as the
/// instant it names in `zone`. A time in the hour skipped when summer time starts cannot come
/// from a server in that zone; it is read with the offset before the change. A time in the hour
/// that repeats when summer time ends is read as the first (summer time) one.
pub fn local_time(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M"))
        .ok()?;
    let local = naive.and_local_timezone(zone).earliest().or_else(|| {
        (naive + Duration::hours(1))
            .and_local_timezone(zone)
            .earliest()
    })?;
    Some(local.with_timezone(&Utc))
}

/// The last part of a tree dropdown's complete name (`Root entity > Musterstadt > GS
/// Lindenweg` → `GS Lindenweg`): the entity's own name, which the school mapping matches.
fn last_segment(name: &str) -> String {
    let name = name.replace("&#62;", ">").replace("&gt;", ">");
    name.rsplit(" > ")
        .next()
        .unwrap_or(&name)
        .trim()
        .to_string()
}

/// One ticket row mapped, `linked_items` still empty.
pub fn map_ticket(row: &Value, zone: Tz) -> Result<TicketRecord, MappingError> {
    let object = row.as_object().ok_or(MappingError::NotAnObject)?;
    let id = number(object.get("id")).ok_or(MappingError::MissingId("id"))?;
    let id_text = id.to_string();
    let required_time = |field: &'static str| -> Result<DateTime<Utc>, MappingError> {
        let value = text(object.get(field)).ok_or_else(|| MappingError::Required {
            id: id_text.clone(),
            field,
            problem: "is missing".to_string(),
        })?;
        local_time(&value, zone).ok_or_else(|| MappingError::Required {
            id: id_text.clone(),
            field,
            problem: format!("is not a time: {value:?}"),
        })
    };
    let created_at = required_time("date")?;
    let updated_at = required_time("date_mod")?;
    let mut problems = Vec::new();
    let mut optional_time = |field: &str| -> Option<DateTime<Utc>> {
        let value = text(object.get(field))?;
        let parsed = local_time(&value, zone);
        if parsed.is_none() {
            problems.push(format!("`{field}` is not a time: {value:?}"));
        }
        parsed
    };
    let first_response_at = optional_time("takeintoaccountdate");
    let solved = optional_time("solvedate");
    let closed = optional_time("closedate");
    let first_response_due_at = optional_time("time_to_own");
    let close_due_at = optional_time("time_to_resolve");
    // Older GLPI has no `takeintoaccountdate`, only the delay in seconds since opening.
    let first_response_at = first_response_at.or_else(|| {
        number(object.get("takeintoaccount_delay_stat"))
            .filter(|seconds| *seconds > 0)
            .map(|seconds| created_at + Duration::seconds(seconds))
    });
    let status = number(object.get("status"));
    let (state, source_state) = match status.and_then(map_status) {
        Some((state, name)) => (state, name.to_string()),
        None => {
            let shown = object
                .get("status")
                .map_or_else(|| "none".to_string(), Value::to_string);
            problems.push(format!("unknown status {shown}; read as open"));
            (TicketState::Open, shown)
        }
    };
    let priority = number(object.get("priority")).and_then(|value| {
        let name = priority_name(value);
        if name.is_none() {
            problems.push(format!("unknown priority {value}"));
        }
        name.map(str::to_string)
    });
    Ok(TicketRecord {
        external_id: id_text.clone(),
        number: id_text,
        title: text(object.get("name")).unwrap_or_default(),
        state,
        source_state,
        priority,
        group: None,
        organization: text(object.get("entities_id")).map(|name| last_segment(&name)),
        owner: None,
        tags: text(object.get("itilcategories_id")).into_iter().collect(),
        customer_role: None,
        created_at,
        updated_at,
        first_response_at,
        closed_at: solved.or(closed),
        group_since: None,
        first_response_due_at,
        close_due_at,
        merged_into: None,
        asset_fields: Vec::new(),
        linked_items: Vec::new(),
        problems,
    })
}

/// One `Item_Ticket` row: the ticket's id, the item's type and id.
pub fn map_link(row: &Value) -> Result<(i64, String, i64), MappingError> {
    let object = row.as_object().ok_or(MappingError::NotAnObject)?;
    let ticket = number(object.get("tickets_id")).ok_or(MappingError::MissingId("tickets_id"))?;
    let item = number(object.get("items_id")).ok_or(MappingError::MissingId("items_id"))?;
    let kind = text(object.get("itemtype")).ok_or(MappingError::MissingId("itemtype"))?;
    Ok((ticket, kind, item))
}

/// What an asset row says about the asset: serial, inventory number, name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFacts {
    pub serial: Option<String>,
    pub otherserial: Option<String>,
    pub name: Option<String>,
}

/// One asset row (`GET /Computer` and the other asset types).
pub fn map_asset(row: &Value) -> Result<(i64, AssetFacts), MappingError> {
    let object = row.as_object().ok_or(MappingError::NotAnObject)?;
    let id = number(object.get("id")).ok_or(MappingError::MissingId("id"))?;
    Ok((
        id,
        AssetFacts {
            serial: text(object.get("serial")),
            otherserial: text(object.get("otherserial")),
            name: text(object.get("name")),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Europe::Berlin;
    use serde_json::json;

    #[test]
    fn local_times_follow_summer_time() {
        // 2026-03-29 02:00 CET the clocks jump to 03:00 CEST.
        // 01:30 is still CET (+1): 00:30 UTC. 03:30 is CEST (+2): 01:30 UTC.
        assert_eq!(
            local_time("2026-03-29 01:30:00", Berlin),
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap())
        );
        assert_eq!(
            local_time("2026-03-29 03:30:00", Berlin),
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap())
        );
        // 02:30 does not exist; read with the offset before the change (+1): 01:30 UTC.
        assert_eq!(
            local_time("2026-03-29 02:30:00", Berlin),
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap())
        );
        // 2026-10-25 03:00 CEST the clocks go back to 02:00 CET; 02:30 happens twice and is
        // read as the first, CEST (+2): 00:30 UTC.
        assert_eq!(
            local_time("2026-10-25 02:30:00", Berlin),
            Some(Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap())
        );
        assert_eq!(local_time("29.03.2026", Berlin), None);
    }

    #[test]
    fn statuses_numbers_and_empty_dropdowns() {
        assert_eq!(map_status(1).unwrap().0, TicketState::New);
        assert_eq!(map_status(3).unwrap().0, TicketState::Open);
        assert_eq!(map_status(4).unwrap().0, TicketState::Pending);
        assert_eq!(map_status(5).unwrap().1, "solved");
        assert_eq!(map_status(7), None);
        assert_eq!(number(Some(&json!("12"))), Some(12));
        assert_eq!(text(Some(&json!("&nbsp;"))), None);
        assert_eq!(text(Some(&json!(0))), None);
        assert_eq!(
            last_segment("Root entity > Musterstadt > GS Lindenweg"),
            "GS Lindenweg"
        );
    }

    #[test]
    fn a_ticket_without_its_opening_time_is_refused_with_its_id() {
        let error = map_ticket(
            &json!({ "id": 5, "date_mod": "2026-01-05 10:00:00" }),
            Berlin,
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "ticket 5: `date` is missing");
    }
}

//! Turns one Zammad ticket (as `expand=true` renders it, docs/vendors/zammad.md#tickets) into a
//! `TicketRecord`. Pure functions over the ticket's JSON, so the field names the connector relies
//! on are pinned by tests.
//!
//! Only what the figures and the asset links need is kept: no article bodies, no customer
//! (`customer`, `created_by`, `updated_by` hold e-mail addresses of pupils and teachers and are
//! never read). A bad value never drops the ticket; it lands in `record.problems`.

use std::collections::HashMap;

use bestand_model::ticket::{AssetField, TicketRecord, TicketState};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Why a ticket could not be mapped at all (the page then counts as malformed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MappingError {
    #[error("a ticket is not a JSON object")]
    NotAnObject,
    #[error("a ticket has no numeric `id`")]
    MissingId,
    #[error("ticket {id} has no readable `{field}` ({problem})")]
    Time {
        id: String,
        field: &'static str,
        problem: String,
    },
}

/// What the mapping needs besides the ticket: the configured asset attributes and the state
/// types of this instance's states (`ticket_states`), by state name.
#[derive(Debug, Clone, Default)]
pub(crate) struct MappingRules {
    pub asset_fields: Vec<String>,
    pub state_types: HashMap<String, String>,
}

/// A ticket's id as Zammad sends it (a JSON number), as text.
fn ticket_id(ticket: &Value) -> Option<String> {
    match ticket.get("id")? {
        Value::Number(number) if number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// The state as one of the five, from its name, else from its state type
/// (docs/vendors/zammad.md#states); `None` when neither is known.
pub(crate) fn map_state(name: &str, state_types: &HashMap<String, String>) -> Option<TicketState> {
    let by_name = |name: &str| match name {
        "new" => Some(TicketState::New),
        "open" => Some(TicketState::Open),
        // State type names: "pending reminder" and "pending action"; state names: "pending
        // reminder" and "pending close".
        "pending reminder" | "pending close" | "pending action" => Some(TicketState::Pending),
        "closed" => Some(TicketState::Closed),
        "merged" => Some(TicketState::Merged),
        _ => None,
    };
    let name = name.trim().to_lowercase();
    by_name(&name).or_else(|| {
        state_types
            .get(&name)
            .and_then(|state_type| by_name(&state_type.trim().to_lowercase()))
    })
}

/// A string field, trimmed; empty text and `-` (Zammad's "nobody" user) read as absent.
fn text(ticket: &Map<String, Value>, field: &str) -> Option<String> {
    match ticket.get(field)? {
        Value::String(text) => {
            let text = text.trim();
            (!text.is_empty() && text != "-").then(|| text.to_string())
        }
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A time field: absent or null is `Ok(None)`, anything else must be RFC 3339.
fn time(ticket: &Map<String, Value>, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    match ticket.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text.trim())
            .map(|at| Some(at.with_timezone(&Utc)))
            .map_err(|error| format!("{text:?} is not an RFC 3339 time ({error})")),
        Some(other) => Err(format!("{other} is not a time")),
    }
}

/// Maps one expanded ticket. `created_at` and `updated_at` are required: without them the
/// ticket cannot be placed in time, and the watermark would be wrong.
pub(crate) fn map_ticket(
    ticket: &Value,
    rules: &MappingRules,
) -> Result<TicketRecord, MappingError> {
    let object = ticket.as_object().ok_or(MappingError::NotAnObject)?;
    let id = ticket_id(ticket).ok_or(MappingError::MissingId)?;
    let required = |field: &'static str| match time(object, field) {
        Ok(Some(at)) => Ok(at),
        Ok(None) => Err(MappingError::Time {
            id: id.clone(),
            field,
            problem: "missing".to_string(),
        }),
        Err(problem) => Err(MappingError::Time {
            id: id.clone(),
            field,
            problem,
        }),
    };
    let created_at = required("created_at")?;
    let updated_at = required("updated_at")?;
    let mut problems = Vec::new();
    let mut optional = |field: &str| {
        time(object, field).unwrap_or_else(|problem| {
            problems.push(format!("`{field}`: {problem}"));
            None
        })
    };
    let first_response_at = optional("first_response_at");
    let closed_at = optional("close_at");
    let first_response_due_at = optional("first_response_escalation_at");
    let close_due_at = optional("close_escalation_at");
    let source_state = text(object, "state").unwrap_or_default();
    let state = if source_state.is_empty() {
        problems.push(
            "no state name (`state`); the answer was not expanded (`expand=true`)".to_string(),
        );
        TicketState::default()
    } else {
        map_state(&source_state, &rules.state_types).unwrap_or_else(|| {
            problems.push(format!(
                "state {source_state:?} is none of Zammad's state types; read as new"
            ));
            TicketState::default()
        })
    };
    let tags = match object.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(Value::as_str)
            .map(|tag| tag.trim().to_string())
            .filter(|tag| !tag.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    let asset_fields = rules
        .asset_fields
        .iter()
        .filter_map(|field| {
            text(object, field).map(|value| AssetField {
                field: field.clone(),
                value,
            })
        })
        .collect();
    Ok(TicketRecord {
        external_id: id,
        number: text(object, "number").unwrap_or_default(),
        title: text(object, "title").unwrap_or_default(),
        state,
        source_state,
        priority: text(object, "priority"),
        group: text(object, "group"),
        organization: text(object, "organization"),
        owner: text(object, "owner"),
        tags,
        // The customer's roles are not in the ticket; reading the customer would mean reading
        // a pupil's or teacher's account (docs/vendors/zammad.md#privacy).
        customer_role: None,
        created_at,
        updated_at,
        first_response_at,
        closed_at,
        group_since: None,
        first_response_due_at,
        close_due_at,
        merged_into: None,
        asset_fields,
        linked_items: Vec::new(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> MappingRules {
        MappingRules {
            asset_fields: vec!["inventarnummer".into(), "seriennummer".into()],
            state_types: HashMap::from([(
                "wartet auf dienstleister".into(),
                "pending action".into(),
            )]),
        }
    }

    fn ticket(extra: Value) -> Value {
        let mut ticket = json!({
            "id": 7, "number": "31007", "title": "iPad lädt nicht",
            "state": "open", "priority": "2 normal", "group": "Endgeräte",
            "organization": "Gymnasium am Park", "owner": "-",
            "customer": "lena.schmidt@schule.example", "created_by": "lena.schmidt@schule.example",
            "created_at": "2026-03-02T07:15:00.000Z", "updated_at": "2026-03-02T09:00:00.123Z",
            "first_response_at": null, "close_at": null,
            "inventarnummer": "MS-00042", "seriennummer": "",
        });
        let object = ticket.as_object_mut().unwrap();
        for (key, value) in extra.as_object().unwrap() {
            object.insert(key.clone(), value.clone());
        }
        ticket
    }

    #[test]
    fn an_expanded_ticket_maps_names_times_and_asset_fields() {
        let record = map_ticket(&ticket(json!({})), &rules()).unwrap();
        assert_eq!(record.external_id, "7");
        assert_eq!(record.number, "31007");
        assert_eq!(record.state, TicketState::Open);
        assert_eq!(record.group.as_deref(), Some("Endgeräte"));
        assert_eq!(record.owner, None, "`-` is nobody");
        assert_eq!(
            record.updated_at.to_rfc3339(),
            "2026-03-02T09:00:00.123+00:00"
        );
        assert_eq!(
            record.asset_fields,
            vec![AssetField {
                field: "inventarnummer".into(),
                value: "MS-00042".into()
            }]
        );
        assert!(record.problems.is_empty(), "{:?}", record.problems);
        let text = serde_json::to_string(&record).unwrap();
        assert!(!text.contains("lena"), "{text}");
    }

    #[test]
    fn states_map_by_name_then_by_state_type() {
        let types = rules().state_types;
        for (name, state) in [
            ("new", TicketState::New),
            ("open", TicketState::Open),
            ("pending reminder", TicketState::Pending),
            ("pending close", TicketState::Pending),
            ("closed", TicketState::Closed),
            ("merged", TicketState::Merged),
            ("Wartet auf Dienstleister", TicketState::Pending),
        ] {
            assert_eq!(map_state(name, &types), Some(state), "{name}");
        }
        assert_eq!(map_state("in Bearbeitung", &types), None);
        let record = map_ticket(&ticket(json!({ "state": "in Bearbeitung" })), &rules()).unwrap();
        assert_eq!(record.state, TicketState::New);
        assert!(record.problems[0].contains("in Bearbeitung"));
    }

    #[test]
    fn bad_times_are_problems_or_errors_and_ids_are_required() {
        let record = map_ticket(&ticket(json!({ "close_at": "gestern" })), &rules()).unwrap();
        assert_eq!(record.closed_at, None);
        assert!(record.problems[0].contains("close_at"));
        let error = map_ticket(&ticket(json!({ "updated_at": null })), &rules()).unwrap_err();
        assert!(error.to_string().contains("updated_at"), "{error}");
        assert_eq!(
            map_ticket(&ticket(json!({ "id": "x" })), &rules()),
            Err(MappingError::MissingId)
        );
        assert_eq!(
            map_ticket(&json!([1]), &rules()),
            Err(MappingError::NotAnObject)
        );
    }
}

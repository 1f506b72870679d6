//! Write-back (issue 18): what bestand puts into a ticket of the service desk so that the agents
//! see the linked devices without switching tools. The store side only: which tickets a run
//! wrote with device links, the facts of those devices, and the German text with its marker
//! (a pure function); the app hands the text to the ticket system's connector, since core makes
//! no network calls (docs/tickets.md, "Write back").

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::Scope;
use crate::error::CoreError;
use crate::store::{in_scope, SourceRef};

/// A device linked to a ticket, with the facts the service desk needs; never the borrower's
/// name, only the role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteBackDevice {
    pub device_id: Uuid,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub warranty_end: Option<NaiveDate>,
    /// Whether the device is on an active loan.
    pub on_loan: bool,
    /// The borrower's role (`student`, `teacher`, `staff`, `school_admin`), if a directory
    /// reports one.
    pub borrower_role: Option<String>,
}

/// A ticket a run wrote that links devices: the ticket system's id and the devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteBackTicket {
    pub external_id: String,
    pub number: String,
    pub devices: Vec<WriteBackDevice>,
}

/// What goes into the ticket: the text, and the marker by which the connector recognises a
/// note it already wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackNote {
    pub text: String,
    pub marker: String,
}

/// The tickets of `source` that run `run_id` wrote (created or changed, so their automatic links
/// were recomputed) and that link at least one device, each with its linked devices, within
/// `scope`: a ticket or device outside it is left out. Merged and deleted tickets are left out
/// too, as the service desk works in the ticket they were merged into.
pub async fn write_back_candidates(
    pool: &PgPool,
    scope: &Scope,
    source: &SourceRef,
    run_id: i64,
) -> Result<Vec<WriteBackTicket>, CoreError> {
    // The role as the Leihvertrag reads it: at the lending school first, pupils first.
    let sql = format!(
        "select t.external_id, t.number, d.device_id, d.asset_tag, d.serial_number, d.model, \
         d.warranty_end, l.loan_id is not null, \
         (select m.role from person_membership m where m.person_id = l.person_id \
          order by m.school_id is not distinct from l.school_id desc, \
          case m.role when 'student' then 0 when 'teacher' then 1 when 'staff' then 2 else 3 end \
          limit 1) \
         from ticket t \
         join ticket_device td on td.ticket_id = t.ticket_id \
         join device d on d.device_id = td.device_id \
         left join loan l on l.device_id = d.device_id and l.state = 'active' \
         where t.source_id = $1 and t.changed_in_run = $2 and t.deleted_at is null \
         and t.state <> 'merged' and {} and {} \
         order by t.external_id, d.asset_tag nulls last, d.serial_number, d.device_id",
        in_scope("t.authority_id", "t.school_id", 3, 4),
        in_scope("d.authority_id", "d.school_id", 3, 4),
    );
    type Row = (
        String,
        String,
        Uuid,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<NaiveDate>,
        bool,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .bind(source.source_id)
        .bind(run_id)
        .bind(scope.authority_param())
        .bind(scope.schools_param())
        .fetch_all(pool)
        .await?;
    let mut tickets: Vec<WriteBackTicket> = Vec::new();
    for (external_id, number, device_id, asset_tag, serial, model, warranty, on_loan, role) in rows
    {
        let device = WriteBackDevice {
            device_id,
            asset_tag,
            serial_number: serial,
            model,
            warranty_end: warranty,
            on_loan,
            borrower_role: role,
        };
        match tickets.last_mut() {
            Some(last) if last.external_id == external_id => last.devices.push(device),
            _ => tickets.push(WriteBackTicket {
                external_id,
                number,
                devices: vec![device],
            }),
        }
    }
    Ok(tickets)
}

/// How the note names a borrower's role: a role, never a person (pupils are minors).
fn role_label(role: Option<&str>) -> &'static str {
    match role {
        Some("student") => "Schüler/in",
        Some("teacher") => "Lehrkraft",
        Some("staff") => "Mitarbeiter/in",
        Some("school_admin") => "Schuladministration",
        _ => "Rolle unbekannt",
    }
}

/// The text for the service desk, one line per device, such as
/// `Inventarnummer INV-0042 · iPad (10. Generation) · Garantie bis 31.08.2027 · ausgeliehen an:
/// Schüler/in`, and the marker `[bestand:<ticket id>:<hash>]`. The marker depends on the ticket
/// and the set of linked devices only, so a ticket whose links did not change gets no second
/// note; a changed link set gets a new one.
pub fn compose_write_back(ticket: &WriteBackTicket) -> WriteBackNote {
    let lines: Vec<String> = ticket
        .devices
        .iter()
        .map(|device| {
            let mut parts = Vec::new();
            parts.push(match (&device.asset_tag, &device.serial_number) {
                (Some(tag), _) => format!("Inventarnummer {tag}"),
                (None, Some(serial)) => format!("Seriennummer {serial}"),
                (None, None) => format!("Gerät {}", device.device_id),
            });
            if let Some(model) = device.model.as_deref().filter(|m| !m.trim().is_empty()) {
                parts.push(model.trim().to_string());
            }
            parts.push(match device.warranty_end {
                Some(end) => format!("Garantie bis {}", end.format("%d.%m.%Y")),
                None => "Garantieende unbekannt".to_string(),
            });
            parts.push(if device.on_loan {
                format!(
                    "ausgeliehen an: {}",
                    role_label(device.borrower_role.as_deref())
                )
            } else {
                "nicht ausgeliehen".to_string()
            });
            parts.join(" · ")
        })
        .collect();
    let heading = if lines.len() == 1 {
        "Verknüpftes Gerät im Inventar (bestand):"
    } else {
        "Verknüpfte Geräte im Inventar (bestand):"
    };
    let text = format!("{heading}\n{}", lines.join("\n"));
    let ids: BTreeSet<Uuid> = ticket.devices.iter().map(|d| d.device_id).collect();
    let mut hasher = blake3::Hasher::new();
    for id in &ids {
        hasher.update(id.as_bytes());
    }
    let hash = hasher.finalize().to_hex();
    let marker = format!("[bestand:{}:{}]", ticket.external_id, &hash.as_str()[..12]);
    WriteBackNote { text, marker }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u128, tag: Option<&str>, role: Option<&str>, on_loan: bool) -> WriteBackDevice {
        WriteBackDevice {
            device_id: Uuid::from_u128(n),
            asset_tag: tag.map(str::to_string),
            serial_number: Some(format!("SN{n}")),
            model: Some("iPad (10. Generation)".into()),
            warranty_end: NaiveDate::from_ymd_opt(2027, 8, 31),
            on_loan,
            borrower_role: role.map(str::to_string),
        }
    }

    fn ticket(devices: Vec<WriteBackDevice>) -> WriteBackTicket {
        WriteBackTicket {
            external_id: "4711".into(),
            number: "31004".into(),
            devices,
        }
    }

    #[test]
    fn the_text_names_tag_model_warranty_and_the_borrowers_role_only() {
        let one = ticket(vec![device(1, Some("INV-0042"), Some("student"), true)]);
        let note = compose_write_back(&one);
        assert_eq!(
            note.text,
            "Verknüpftes Gerät im Inventar (bestand):\nInventarnummer INV-0042 · \
             iPad (10. Generation) · Garantie bis 31.08.2027 · ausgeliehen an: Schüler/in"
        );
        let mut two = one.clone();
        two.devices.push(WriteBackDevice {
            model: None,
            warranty_end: None,
            ..device(2, None, None, false)
        });
        two.devices
            .push(device(3, Some("INV-0043"), Some("teacher"), true));
        let lines: Vec<String> = compose_write_back(&two)
            .text
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(lines[0], "Verknüpfte Geräte im Inventar (bestand):");
        assert_eq!(
            lines[2],
            "Seriennummer SN2 · Garantieende unbekannt · nicht ausgeliehen"
        );
        assert!(lines[3].ends_with("ausgeliehen an: Lehrkraft"), "{lines:?}");
        let unknown = ticket(vec![device(1, Some("INV-0042"), None, true)]);
        assert!(compose_write_back(&unknown)
            .text
            .ends_with("ausgeliehen an: Rolle unbekannt"));
    }

    #[test]
    fn the_marker_follows_the_ticket_and_its_set_of_devices() {
        let a = ticket(vec![
            device(1, Some("INV-0042"), None, false),
            device(2, Some("INV-0043"), None, false),
        ]);
        let marker = compose_write_back(&a).marker;
        assert!(marker.starts_with("[bestand:4711:"), "{marker}");
        assert!(marker.ends_with(']'));
        // The same devices in another order, with another loan: the same marker.
        let mut b = a.clone();
        b.devices.reverse();
        b.devices[0].on_loan = true;
        assert_eq!(compose_write_back(&b).marker, marker);
        // Another device set or another ticket: another marker.
        let mut c = a.clone();
        c.devices.pop();
        assert_ne!(compose_write_back(&c).marker, marker);
        let mut d = a;
        d.external_id = "4712".into();
        assert_ne!(compose_write_back(&d).marker, marker);
    }
}

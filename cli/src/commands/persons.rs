//! `bestand schools` and `bestand persons`: the people the school directories know, and the
//! devices assigned to them.

use bestand_core::model::{DeviceCategory, PersonRole};
use bestand_core::procurement::schools::{self, Target};
use bestand_core::store::persons::{
    self, PersonDetail, PersonFilter, PersonSummary, SchoolSummary, UnresolvedHint,
};
use bestand_core::Clock;
use clap::{Args, Subcommand};
use rust_decimal::Decimal;

use crate::output::{self, opt, time, Format, Row};
use bestand_app::config::Config;
use bestand_app::{Database, Migrations, SystemClock};

#[derive(Debug, Subcommand)]
pub enum SchoolsCommand {
    /// List the schools with their device, pupil, teacher and class counts.
    List {
        /// Only this authority (slug).
        #[arg(long)]
        authority: Option<String>,
    },
    /// Set a school's target equipment for a category (the media development plan).
    Target {
        /// The school number.
        school: String,
        #[arg(value_parser = parse_category)]
        category: DeviceCategory,
        /// Devices per pupil (`1.0`, `0.5`).
        #[arg(
            long,
            conflicts_with = "per_room",
            required_unless_present = "per_room"
        )]
        per_pupil: Option<Decimal>,
        /// Devices per class room.
        #[arg(long, requires = "rooms")]
        per_room: Option<Decimal>,
        /// The number of class rooms.
        #[arg(long)]
        rooms: Option<u32>,
        #[arg(long)]
        authority: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
    /// Set a school's pupils at a level (the cost split's key) where the directory's count
    /// is not the one to use.
    Pupils {
        /// The school number.
        school: String,
        /// primary, lower_secondary, upper_secondary or vocational.
        #[arg(long)]
        level: String,
        pupils: u32,
        #[arg(long)]
        authority: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
}

fn parse_category(text: &str) -> Result<DeviceCategory, String> {
    text.parse()
}

#[derive(Debug, Subcommand)]
pub enum PersonsCommand {
    /// List persons, filtered.
    List(ListArgs),
    /// Show one person: schools, roles, classes, sources and assigned devices.
    Show {
        /// Username, email or person id.
        key: String,
    },
    /// MDM user hints that match nobody or several persons (listed, never guessed).
    Hints {
        /// Only this authority (slug).
        #[arg(long)]
        authority: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this authority (slug).
    #[arg(long)]
    pub authority: Option<String>,
    /// School number, name or alias.
    #[arg(long)]
    pub school: Option<String>,
    /// student, teacher, staff or school_admin.
    #[arg(long, value_parser = parse_role)]
    pub role: Option<PersonRole>,
    /// Class (Klasse) as the directory names it, e.g. 5a.
    #[arg(long)]
    pub class: Option<String>,
    /// Only persons who left (no directory reports them any more).
    #[arg(long)]
    pub left: bool,
    /// Part of username, email or name.
    #[arg(long, short = 's')]
    pub search: Option<String>,
    /// At most this many persons.
    #[arg(long)]
    pub limit: Option<i64>,
}

fn parse_role(text: &str) -> Result<PersonRole, String> {
    text.parse()
}

pub async fn run_schools(
    command: SchoolsCommand,
    config: &Config,
    format: Format,
) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = match command {
        SchoolsCommand::List { authority } => {
            persons::list_schools(&database.pool, &super::scope(), authority.as_deref())
                .await
                .map_err(anyhow::Error::from)
                .and_then(|list| output::print_list(&list, format))
        }
        SchoolsCommand::Target {
            school,
            category,
            per_pupil,
            per_room,
            rooms,
            authority,
            by,
        } => {
            let target = match (per_pupil, per_room, rooms) {
                (Some(per_pupil), _, _) => Target::PerPupil(per_pupil),
                (None, Some(per_room), Some(rooms)) => Target::PerRoom { per_room, rooms },
                _ => anyhow::bail!("give --per-pupil N, or --per-room N with --rooms N"),
            };
            schools::set_target_equipment(
                &database.pool,
                &super::scope(),
                &super::actor(by),
                authority.as_deref(),
                &school,
                category,
                target,
            )
            .await
            .map_err(anyhow::Error::from)
            .map(|()| println!("school {school}: target for {category} set"))
        }
        SchoolsCommand::Pupils {
            school,
            level,
            pupils,
            authority,
            by,
        } => schools::set_pupils(
            &database.pool,
            &super::scope(),
            &super::actor(by),
            authority.as_deref(),
            &school,
            &level,
            pupils,
            SystemClock.now(),
        )
        .await
        .map_err(anyhow::Error::from)
        .map(|()| println!("school {school}: {pupils} pupils at level {level}")),
    };
    database.close().await?;
    result
}

pub async fn run(command: PersonsCommand, config: &Config, format: Format) -> anyhow::Result<()> {
    let database = Database::open(config, Migrations::RequireCurrent).await?;
    let result = run_with(&database, command, format).await;
    database.close().await?;
    result
}

async fn run_with(
    database: &Database,
    command: PersonsCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        PersonsCommand::List(args) => {
            let filter = PersonFilter {
                authority: args.authority,
                school: args.school,
                role: args.role,
                class: args.class,
                left: args.left,
                search: args.search,
                limit: args.limit,
            };
            let list = persons::list_persons(&database.pool, &super::scope(), &filter).await?;
            output::print_list(&list, format)?;
            if format == Format::Table {
                eprintln!("{} person(s)", list.len());
            }
        }
        PersonsCommand::Show { key } => {
            let detail = persons::show_person(&database.pool, &super::scope(), &key).await?;
            match format {
                Format::Table => print_detail(&detail),
                _ => output::print_json(&detail)?,
            }
        }
        PersonsCommand::Hints { authority } => {
            let list =
                persons::unresolved_hints(&database.pool, &super::scope(), authority.as_deref())
                    .await?;
            output::print_list(&list, format)?;
            if format == Format::Table {
                eprintln!("{} unresolved hint(s)", list.len());
            }
        }
    }
    Ok(())
}

fn print_detail(detail: &PersonDetail) {
    let p = &detail.person;
    let name = [p.given_name.as_deref(), p.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let record = match (&p.record_source_uid, &p.record_uid) {
        (Some(source), Some(record)) => format!("{source}/{record}"),
        _ => String::new(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("person id", p.person_id.to_string()),
        ("authority", detail.authority.clone()),
        ("name", name),
        ("username", opt(&p.username)),
        ("email", opt(&p.email)),
        ("record id", record),
        ("directory uuid", opt(&p.directory_uuid)),
        ("Entra object id", opt(&p.entra_object_id)),
        ("left", time(&p.left_at)),
        ("first seen", time(&Some(p.first_seen_at))),
    ];
    println!(
        "{}",
        output::table(
            vec!["field", "value"],
            rows.into_iter().map(|(k, v)| vec![k.to_string(), v])
        )
    );
    println!("\nSchools");
    println!(
        "{}",
        output::table(
            vec!["school", "role", "class", "source"],
            detail.memberships.iter().map(|m| vec![
                format!("{} ({})", m.school_name, m.school_number),
                m.role.clone(),
                opt(&m.class_name),
                m.source_name.clone(),
            ])
        )
    );
    println!("\nSources");
    println!(
        "{}",
        output::table(
            vec!["source", "record", "first seen", "state"],
            detail.sources.iter().map(|l| vec![
                l.source_name.clone(),
                l.external_id.clone(),
                time(&Some(l.first_seen_at)),
                match l.missing_since {
                    Some(missing) => format!("missing since {}", missing.format("%Y-%m-%d")),
                    None => "reporting".to_string(),
                },
            ])
        )
    );
    println!("\nAssigned devices");
    println!(
        "{}",
        output::table(
            vec![
                "asset tag",
                "serial",
                "category",
                "model",
                "source",
                "since"
            ],
            detail.devices.iter().map(|d| vec![
                opt(&d.asset_tag),
                opt(&d.serial_number),
                d.category.clone(),
                opt(&d.model),
                d.source_name.clone(),
                time(&Some(d.since)),
            ])
        )
    );
    println!("\nLoans");
    println!("{}", super::loans::loans_table(&detail.loans, false));
}

impl Row for SchoolSummary {
    fn headers() -> Vec<&'static str> {
        vec![
            "authority",
            "number",
            "name",
            "type",
            "devices",
            "pupils",
            "teachers",
            "classes",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.authority.clone(),
            self.school_number.clone(),
            self.name.clone(),
            self.school_type.clone(),
            self.devices.to_string(),
            self.pupils.to_string(),
            self.teachers.to_string(),
            self.classes.to_string(),
        ]
    }
}

impl Row for PersonSummary {
    fn headers() -> Vec<&'static str> {
        vec![
            "username", "name", "email", "roles", "devices", "left", "id",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            opt(&self.username),
            opt(&self.name),
            opt(&self.email),
            opt(&self.roles),
            self.devices.to_string(),
            time(&self.left_at),
            self.person_id.to_string(),
        ]
    }
}

impl Row for UnresolvedHint {
    fn headers() -> Vec<&'static str> {
        vec![
            "status",
            "source",
            "asset tag",
            "serial",
            "hint username",
            "hint email",
            "candidates",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.status.replace('_', " "),
            self.source_name.clone(),
            opt(&self.asset_tag),
            opt(&self.serial_number),
            opt(&self.hint_username),
            opt(&self.hint_email),
            opt(&self.candidates),
        ]
    }
}

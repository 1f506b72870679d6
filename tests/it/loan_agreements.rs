//! `bestand loans agreement` against PostgreSQL: loans built as the loan commands build them,
//! printed through the functions the command uses, and read back with `pdftotext -layout` and
//! `pdfinfo`: borrower, class, device, dates in German format, school and authority, the
//! guardians' line for pupils only, one page per loan of a class in family-name order, the
//! hand-out file's agreements, pseudonymised and cancelled loans refused, and an authority's
//! template named in the config.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bestand_app::config::{Config, ConfigOrigin};
use bestand_cli::commands::loans::agreements::{
    agreements_of_class, agreements_of_loan_ids, agreements_of_loans, default_class_output,
    default_output, import_agreements, load_template, refuse_existing, template_from,
    write_agreements, WrittenAgreements,
};
use bestand_cli::commands::loans::read_loan_csv;
use bestand_core::access::{Actor, Scope};
use bestand_core::loans::{self, BulkOptions, IssueRequest, LoanView, ReturnRequest};
use bestand_core::privacy;
use bestand_documents::agreement::AgreementTemplate;
use chrono::{Duration, NaiveDate};

use crate::loans::{world, World};
use crate::support::t0;

const GUARDIANS: &str = "Unterschrift der Erziehungsberechtigten";
const DEFAULT_TITLE: &str = "Leihvertrag über ein digitales Endgerät";

/// A folder of its own for one test's files; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "bestand-loan-agreements-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn poppler(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?} (install poppler-utils): {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The text of `path` (one page, or all with `None`) as `pdftotext -layout` reads it.
fn pdf_text(path: &Path, page: Option<usize>) -> String {
    let mut command = Command::new("pdftotext");
    command.arg("-layout");
    if let Some(page) = page {
        let page = page.to_string();
        command.args(["-f", &page, "-l", &page]);
    }
    poppler(command.arg(path).arg("-"))
}

/// The page count `pdfinfo` reports, which also proves the file is a PDF it can read.
fn pdf_pages(path: &Path) -> usize {
    let info = poppler(Command::new("pdfinfo").arg(path));
    info.lines()
        .find_map(|line| line.strip_prefix("Pages:"))
        .map(|count| count.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("pdfinfo printed no page count:\n{info}"))
}

fn assert_contains(text: &str, expected: &str) {
    assert!(
        text.contains(expected),
        "expected {expected:?} in the agreement text:\n{text}"
    );
}

fn german(date: NaiveDate) -> String {
    date.format("%d.%m.%Y").to_string()
}

fn error_text<T: std::fmt::Debug>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => format!("{error:#}"),
    }
}

/// Hands `device` to `borrower` as `bestand loans issue` does, with accessories, a condition
/// and who handed it out.
async fn hand_out(
    world: &World,
    device: &str,
    borrower: &str,
    due_on: Option<NaiveDate>,
    accessories: &[&str],
    condition: Option<&str>,
) -> LoanView {
    let request = IssueRequest {
        device: device.into(),
        borrower: borrower.into(),
        due_on,
        accessories: accessories.iter().map(|a| a.to_string()).collect(),
        condition: condition.map(str::to_string),
        ..IssueRequest::default()
    };
    loans::issue_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        &world.policy,
        &request,
        &Actor::CliUser("Frau Kaya".into()),
    )
    .await
    .unwrap()
}

/// Writes `keys`' agreements with the default template, as the command does.
async fn print_loans(world: &World, keys: &[&str], path: &Path) -> WrittenAgreements {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let list = agreements_of_loans(world.pool(), &Scope::All, &keys)
        .await
        .unwrap();
    let template = template_from(None).unwrap();
    refuse_existing(path, false).unwrap();
    write_agreements(&template, &list, path, false).unwrap()
}

#[tokio::test]
async fn a_loan_agreement_shows_school_borrower_device_and_dates_and_pupils_get_the_guardian_line()
{
    let world = world(3, 0).await;
    let due = NaiveDate::from_ymd_opt(2027, 7, 15).unwrap();
    let lea = hand_out(
        &world,
        "INV-0001",
        "lea.schulz",
        Some(due),
        &["Ladegerät", "Schutzhülle"],
        Some("Kratzer am Displayrand"),
    )
    .await;
    let becker = hand_out(&world, "INV-0002", "j.becker", None, &[], None).await;
    let dir = TempDir::new();

    // One loan, named by its device: the default file name carries the loan id.
    let single = agreements_of_loans(world.pool(), &Scope::All, &["INV-0001".to_string()])
        .await
        .unwrap();
    assert_eq!(
        default_output(&single),
        PathBuf::from(format!("leihvertrag-{}.pdf", lea.loan_id))
    );
    let path = dir.join(default_output(&single));
    let written = print_loans(&world, &["INV-0001"], &path).await;
    assert_eq!(written.loan_ids, vec![lea.loan_id]);
    assert_eq!((written.pages, pdf_pages(&path)), (1, 1));
    let text = pdf_text(&path, None);
    for expected in [
        DEFAULT_TITLE,
        "Stadt Musterstadt",
        "Grundschule Lindenweg",
        "Schulnummer 100001",
        "Lea Schulz",
        "Schülerin/Schüler",
        "4a",
        "lea.schulz",
        "Tablet",
        "Apple",
        "iPad (9th generation)",
        "SER00001",
        "INV-0001",
        "Ladegerät, Schutzhülle",
        "Kratzer am Displayrand",
        "Frau Kaya",
        &german(t0().date_naive()),
        "23.11.2026",
        "15.07.2027",
        "vom 23.11.2026 bis zum 15.07.2027",
        GUARDIANS,
        &format!("Leihvertrag Nr. {}", lea.loan_id),
    ] {
        assert_contains(&text, expected);
    }
    assert!(!text.contains("2026-11-23"), "dates are German:\n{text}");

    // An existing file is kept unless --force.
    let again = agreements_of_loans(world.pool(), &Scope::All, &["INV-0001".to_string()])
        .await
        .unwrap();
    let template = template_from(None).unwrap();
    let refused = error_text(refuse_existing(&path, false));
    assert!(
        refused.contains("already exists; pass --force"),
        "{refused}"
    );
    let refused = error_text(write_agreements(&template, &again, &path, false));
    assert!(
        refused.contains("already exists; pass --force"),
        "{refused}"
    );
    refuse_existing(&path, true).unwrap();
    write_agreements(&template, &again, &path, true).unwrap();
    assert_eq!(pdf_pages(&path), 1);

    // Two loans, one per page: the teacher signs without guardians, and has no class.
    let keys = [
        format!("loan:{}", lea.loan_id),
        format!("#{}", becker.loan_id),
    ];
    let both = agreements_of_loans(world.pool(), &Scope::All, &keys)
        .await
        .unwrap();
    assert_eq!(default_output(&both), PathBuf::from("leihvertraege.pdf"));
    let path = dir.join("beide.pdf");
    let written = write_agreements(&template, &both, &path, false).unwrap();
    assert_eq!(written.loan_ids, vec![lea.loan_id, becker.loan_id]);
    assert_eq!((written.pages, pdf_pages(&path)), (2, 2));
    let pupil_page = pdf_text(&path, Some(1));
    assert_contains(&pupil_page, "Lea Schulz");
    assert_contains(&pupil_page, GUARDIANS);
    let teacher_page = pdf_text(&path, Some(2));
    for expected in [
        "Jana Becker",
        "Lehrkraft",
        "j.becker",
        "SER00002",
        "INV-0002",
        "23.11.2026",
        // The default due date: the end of the school year.
        "31.07.2027",
        "keine Mängel vermerkt",
        &format!("Leihvertrag Nr. {}", becker.loan_id),
    ] {
        assert_contains(&teacher_page, expected);
    }
    assert!(
        !teacher_page.contains(GUARDIANS),
        "no guardian line for a teacher:\n{teacher_page}"
    );
    assert!(!teacher_page.contains("Schülerin/Schüler"));
}

#[tokio::test]
async fn a_class_prints_one_page_per_active_loan_by_family_name() {
    let world = world(6, 0).await;
    // Ben Wolf gets his loan first, Lea Schulz still comes first on paper.
    let ben = hand_out(&world, "INV-0001", "ben.wolf", None, &[], None).await;
    let lea = hand_out(&world, "INV-0002", "lea.schulz", None, &[], None).await;
    // Not in the class: Mia (4b) and the teacher; not active: Ben's returned second device.
    hand_out(&world, "INV-0003", "mia.kern", None, &[], None).await;
    hand_out(&world, "INV-0004", "j.becker", None, &[], None).await;
    let returned = hand_out(&world, "INV-0005", "ben.wolf", None, &[], None).await;
    loans::return_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        returned.loan_id,
        &ReturnRequest::default(),
        &Actor::CliUser("Frau Kaya".into()),
    )
    .await
    .unwrap();
    let today = t0().date_naive();

    let list = agreements_of_class(
        world.pool(),
        &Scope::All,
        None,
        "GS Lindenweg",
        " 4A ",
        today,
    )
    .await
    .unwrap();
    let ids: Vec<i64> = list.iter().map(|data| data.loan_id).collect();
    assert_eq!(ids, vec![lea.loan_id, ben.loan_id]);
    assert_eq!(
        default_class_output("4a"),
        PathBuf::from("leihvertraege-4a.pdf")
    );
    let dir = TempDir::new();
    let path = dir.join(default_class_output("4a"));
    let template = template_from(None).unwrap();
    let written = write_agreements(&template, &list, &path, false).unwrap();
    assert_eq!(pdf_pages(&path), list.len());
    assert_eq!(written.pages, 2);

    let first = pdf_text(&path, Some(1));
    assert_contains(&first, "Lea Schulz");
    assert_contains(&first, "SER00002");
    assert_contains(&first, GUARDIANS);
    assert_contains(&first, "Leihvertrag Nr. ");
    let second = pdf_text(&path, Some(2));
    assert_contains(&second, "Ben Wolf");
    assert_contains(&second, "SER00001");
    assert_contains(&second, "4a");
    assert_contains(&second, GUARDIANS);
    let all = pdf_text(&path, None);
    for absent in ["Mia Kern", "Jana Becker", "SER00005"] {
        assert!(!all.contains(absent), "{absent} is not in 4a's agreements");
    }

    // The school by number works as well; a class without active loans is an error.
    let by_number = agreements_of_class(world.pool(), &Scope::All, None, "100001", "4a", today)
        .await
        .unwrap();
    assert_eq!(by_number.len(), 2);
    let none = error_text(
        agreements_of_class(world.pool(), &Scope::All, None, "100001", "3c", today).await,
    );
    assert!(none.contains("no active loans of class 3c"), "{none}");
}

#[tokio::test]
async fn the_loans_of_a_hand_out_file_get_their_agreements() {
    let world = world(3, 0).await;
    let dir = TempDir::new();
    let template = template_from(None).unwrap();
    let csv = "borrower,device,due,accessories\n\
               lea.schulz,INV-0001,31.07.2027,Ladegerät\n\
               ben.wolf,INV-0002,,\n";
    let rows = read_loan_csv(Cursor::new(csv)).unwrap();
    let report = world
        .import(&rows, BulkOptions::default(), "Frau Kaya")
        .await;
    assert!(report.applied && report.errors.is_empty(), "{report:?}");

    let path = dir.join("ausgabe-4a.pdf");
    let written = import_agreements(world.pool(), &Scope::All, &template, &report, &path, false)
        .await
        .unwrap()
        .expect("the import created loans");
    assert_eq!(written.loan_ids.len(), 2);
    assert_eq!(pdf_pages(&path), 2);
    let first = pdf_text(&path, Some(1));
    assert_contains(&first, "Lea Schulz");
    assert_contains(&first, "INV-0001");
    assert_contains(&first, "31.07.2027");
    assert_contains(&pdf_text(&path, Some(2)), "Ben Wolf");

    // A file with a bad row and no --partial writes no loans, hence no agreements.
    let rows = read_loan_csv(Cursor::new(
        "borrower,device\nmia.kern,INV-0003\nnobody,INV-0001\n",
    ))
    .unwrap();
    let report = world
        .import(&rows, BulkOptions::default(), "Frau Kaya")
        .await;
    assert!(!report.applied);
    let path = dir.join("nichts.pdf");
    let none = import_agreements(world.pool(), &Scope::All, &template, &report, &path, false)
        .await
        .unwrap();
    assert!(none.is_none());
    assert!(!path.exists());
}

#[tokio::test]
async fn pseudonymised_and_cancelled_loans_get_no_agreement() {
    let world = world(3, 0).await;
    let lea = hand_out(&world, "INV-0001", "lea.schulz", None, &[], None).await;
    loans::return_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        lea.loan_id,
        &ReturnRequest::default(),
        &Actor::CliUser("Frau Kaya".into()),
    )
    .await
    .unwrap();
    // Lea left long ago; the purge replaces her on the closed loan by a pseudonym.
    sqlx::query("update person set left_at = $1 where username = 'lea.schulz'")
        .bind(t0() - Duration::days(400))
        .execute(world.pool())
        .await
        .unwrap();
    let purge = privacy::purge(
        world.pool(),
        &Scope::All,
        &Actor::CliUser("dsb".into()),
        t0(),
        "musterstadt",
        12,
        false,
    )
    .await
    .unwrap();
    assert_eq!(purge.loans.len(), 1);

    let refused =
        error_text(agreements_of_loan_ids(world.pool(), &Scope::All, &[lea.loan_id]).await);
    assert!(
        refused.contains(&format!("loan {} has no borrower any more", lea.loan_id))
            && refused.contains("pseudonymised"),
        "{refused}"
    );
    let refused = error_text(
        agreements_of_loans(
            world.pool(),
            &Scope::All,
            &[format!("loan:{}", lea.loan_id)],
        )
        .await,
    );
    assert!(refused.contains("pseudonymised"), "{refused}");

    let ben = hand_out(&world, "INV-0002", "ben.wolf", None, &[], None).await;
    loans::cancel_loan(
        world.pool(),
        &Scope::All,
        &*world.clock,
        ben.loan_id,
        "falsches Gerät",
        &Actor::CliUser("Frau Kaya".into()),
    )
    .await
    .unwrap();
    let refused =
        error_text(agreements_of_loan_ids(world.pool(), &Scope::All, &[ben.loan_id]).await);
    assert!(refused.contains("was cancelled"), "{refused}");

    let refused = error_text(agreements_of_loan_ids(world.pool(), &Scope::All, &[999_999]).await);
    assert!(refused.contains("loan not found: 999999"), "{refused}");
}

const CUSTOM_TEMPLATE: &str = r#"
title = "Nutzungsvereinbarung für ein Schul-iPad"
letterhead = ["Stadt Musterstadt", "Fachbereich Schule"]
"#;

#[tokio::test]
async fn the_template_named_in_the_config_changes_the_agreement() {
    let world = world(1, 0).await;
    let lea = hand_out(&world, "INV-0001", "lea.schulz", None, &[], None).await;
    let dir = TempDir::new();
    std::fs::write(dir.join("leihvertrag.toml"), CUSTOM_TEMPLATE).unwrap();
    let config_path = dir.join("config.toml");
    std::fs::write(
        &config_path,
        "[loans]\nagreement_template = \"leihvertrag.toml\"\n",
    )
    .unwrap();

    // A relative path is relative to the config file's folder.
    let config = Config::from_file(&config_path, ConfigOrigin::Flag).unwrap();
    assert_eq!(
        config.loans.agreement_template.as_deref(),
        Some(dir.join("leihvertrag.toml").as_path())
    );
    let template = load_template(&config).unwrap();
    let list = agreements_of_loan_ids(world.pool(), &Scope::All, &[lea.loan_id])
        .await
        .unwrap();
    let path = dir.join("eigenes.pdf");
    write_agreements(&template, &list, &path, false).unwrap();
    let text = pdf_text(&path, None);
    assert_contains(&text, "Nutzungsvereinbarung für ein Schul-iPad");
    assert_contains(&text, "Fachbereich Schule");
    assert_contains(&text, "Lea Schulz");
    assert!(!text.contains(DEFAULT_TITLE), "{text}");

    // Without the key, the built-in agreement.
    let plain = Config::parse("[loans]\n", &config_path).unwrap();
    assert_eq!(
        load_template(&plain).unwrap(),
        AgreementTemplate::default_german().unwrap()
    );

    // A missing or broken file stops the command, naming the file and the config key.
    let missing = Config::parse(
        "[loans]\nagreement_template = \"fehlt.toml\"\n",
        &config_path,
    )
    .unwrap();
    let message = error_text(load_template(&missing));
    assert!(
        message.contains("agreement_template")
            && message.contains(&dir.join("fehlt.toml").display().to_string()),
        "{message}"
    );
    std::fs::write(dir.join("kaputt.toml"), "titel = \"Leihvertrag\"\n").unwrap();
    let broken = Config::parse(
        "[loans]\nagreement_template = \"kaputt.toml\"\n",
        &config_path,
    )
    .unwrap();
    let message = error_text(load_template(&broken));
    assert!(
        message.contains("invalid agreement template")
            && message.contains(&dir.join("kaputt.toml").display().to_string()),
        "{message}"
    );
    // An empty path is refused when the config is loaded.
    let empty = Config::parse("[loans]\nagreement_template = \"\"\n", &config_path)
        .unwrap_err()
        .to_string();
    assert!(empty.contains("agreement_template"), "{empty}");
}

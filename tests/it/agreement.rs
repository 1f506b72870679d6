//! Loan agreement PDFs, read back the way a person or an archive would: `pdftotext` for the
//! text (so names must be real text, not shapes), `pdfinfo` for the page count and `pdffonts`
//! for the embedded font.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bestand_documents::agreement::{
    render_agreements, AgreementData, AgreementError, AgreementTemplate, AuthorityInfo,
    BorrowerInfo, BorrowerRole, DeviceInfo, SchoolInfo, TemplateProblem,
};
use chrono::NaiveDate;

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn pupil(loan_id: i64, name: &str, class_name: &str, serial: &str, minor: bool) -> AgreementData {
    AgreementData {
        loan_id,
        authority: AuthorityInfo {
            name: "Landkreis Musterstadt".to_owned(),
        },
        school: SchoolInfo {
            name: "Gesamtschule Am Weißen Tor".to_owned(),
            school_number: "123456".to_owned(),
        },
        borrower: BorrowerInfo {
            display_name: name.to_owned(),
            username: Some(format!("user{loan_id}")),
            class_name: Some(class_name.to_owned()),
            role: BorrowerRole::Pupil,
            minor,
        },
        device: DeviceInfo {
            category: "Tablet".to_owned(),
            manufacturer: Some("Apple".to_owned()),
            model: Some("iPad (10. Generation)".to_owned()),
            serial_number: Some(serial.to_owned()),
            asset_tag: Some(format!("INV-2025-{loan_id:05}")),
        },
        accessories: vec![
            "Hülle mit Tastatur".to_owned(),
            "USB-C-Ladegerät".to_owned(),
            "Eingabestift".to_owned(),
        ],
        handed_out_on: date(2025, 9, 1),
        due_on: Some(date(2026, 7, 31)),
        handed_out_by: "Frau Schäfer".to_owned(),
        condition: Some("leichter Kratzer auf der Rückseite".to_owned()),
    }
}

fn teacher(loan_id: i64) -> AgreementData {
    let mut data = pupil(loan_id, "Dr. Petra Groß", "", "C02ZX1LEHRER", false);
    data.borrower.role = BorrowerRole::Teacher;
    data.borrower.class_name = None;
    data.device = DeviceInfo {
        category: "Notebook".to_owned(),
        manufacturer: Some("Lenovo".to_owned()),
        model: Some("ThinkPad L13".to_owned()),
        serial_number: Some("PF3ABCDE".to_owned()),
        asset_tag: None,
    };
    data.accessories = vec!["Netzteil".to_owned()];
    data.due_on = None;
    data.condition = None;
    data
}

/// A rendered PDF on disk for the poppler tools; removed when dropped.
struct PdfFile(PathBuf);

impl PdfFile {
    fn new(bytes: &[u8]) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "bestand-agreement-{}-{}.pdf",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }

    fn text(&self) -> String {
        run_poppler(
            Command::new("pdftotext")
                .arg("-layout")
                .arg(&self.0)
                .arg("-"),
        )
    }

    /// The words of one page with the left edge of each, in the order poppler finds them on
    /// the page (left to right within a line); a right-to-left word comes with its letters in
    /// drawing order, i.e. reversed.
    fn page_words(&self, page: usize) -> Vec<(f32, String)> {
        let page = page.to_string();
        let html = run_poppler(
            Command::new("pdftotext")
                .args(["-bbox", "-f", &page, "-l", &page])
                .arg(&self.0)
                .arg("-"),
        );
        html.lines()
            .filter_map(|line| {
                let attributes = line.trim().strip_prefix("<word ")?;
                let x_min = attributes.split("xMin=\"").nth(1)?.split('"').next()?;
                let text = attributes.split_once('>')?.1.strip_suffix("</word>")?;
                Some((x_min.parse().ok()?, text.to_owned()))
            })
            .collect()
    }

    fn page_text(&self, page: usize) -> String {
        let page = page.to_string();
        run_poppler(
            Command::new("pdftotext")
                .args(["-layout", "-f", &page, "-l", &page])
                .arg(&self.0)
                .arg("-"),
        )
    }

    /// `pdffonts`' table: one line per font with its name, type and whether it is embedded
    /// and subset.
    fn fonts(&self) -> String {
        run_poppler(Command::new("pdffonts").arg(&self.0))
    }

    fn pages(&self) -> usize {
        let info = run_poppler(Command::new("pdfinfo").arg(&self.0));
        info.lines()
            .find_map(|line| line.strip_prefix("Pages:"))
            .map(|count| count.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("pdfinfo printed no page count:\n{info}"))
    }
}

impl Drop for PdfFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run_poppler(command: &mut Command) -> String {
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

fn render(template: &AgreementTemplate, agreements: &[AgreementData]) -> PdfFile {
    let bytes = render_agreements(template, agreements).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    PdfFile::new(&bytes)
}

fn assert_contains(text: &str, expected: &str) {
    assert!(
        text.contains(expected),
        "expected {expected:?} in the agreement text:\n{text}"
    );
}

#[test]
fn a_single_agreement_shows_the_loan_on_one_page_in_german() {
    let template = AgreementTemplate::default_german().unwrap();
    let pdf = render(
        &template,
        &[pupil(
            4711,
            "Jörg Müller-Lüdenscheidt",
            "7b",
            "DMPXK2Q9HG7F",
            true,
        )],
    );

    assert_eq!(pdf.pages(), 1);
    let text = pdf.text();
    for expected in [
        "Leihvertrag über ein digitales Endgerät",
        "Landkreis Musterstadt",
        "Gesamtschule Am Weißen Tor",
        "Schulnummer 123456",
        "Jörg Müller-Lüdenscheidt",
        "7b",
        "user4711",
        "Schülerin/Schüler",
        "Tablet",
        "Apple",
        "iPad (10. Generation)",
        "DMPXK2Q9HG7F",
        "INV-2025-04711",
        "Hülle mit Tastatur, USB-C-Ladegerät, Eingabestift",
        "01.09.2025",
        "31.07.2026",
        "vom 01.09.2025 bis zum 31.07.2026",
        "leichter Kratzer auf der Rückseite",
        "Frau Schäfer",
        "gemäß §§ 598 ff. BGB",
        "§ 1 Zweck der Überlassung",
        "§ 3 Verlust und Beschädigung (Meldepflicht)",
        "§ 6 Datenschutz",
        "ausschließlich",
        "Ort, Datum",
        "Unterschrift der entleihenden Person",
        "Unterschrift der Erziehungsberechtigten",
        "Leihvertrag Nr. 4711",
    ] {
        assert_contains(&text, expected);
    }
}

#[test]
fn a_class_prints_one_page_per_agreement_with_the_guardian_line_only_for_minors() {
    let template = AgreementTemplate::default_german().unwrap();
    let agreements = vec![
        pupil(1, "Ayşe Yılmaz", "5a", "SERIAL0001", true),
        pupil(2, "Lukas Weiß", "5a", "SERIAL0002", true),
        pupil(3, "Zoë Ostrowski", "5a", "SERIAL0003", true),
        pupil(4, "Björn Größer", "Q2", "SERIAL0004", false),
        teacher(5),
    ];
    let pdf = render(&template, &agreements);

    assert_eq!(pdf.pages(), agreements.len());
    for (index, data) in agreements.iter().enumerate() {
        let page = pdf.page_text(index + 1);
        assert_contains(&page, data.device.serial_number.as_deref().unwrap());
        assert_contains(
            &page,
            &format!("Leihvertrag Nr. {} · Seite 1 von 1", data.loan_id),
        );
        assert_eq!(
            page.contains("Unterschrift der Erziehungsberechtigten"),
            data.borrower.minor,
            "guardian line on page {} (minor: {})",
            index + 1,
            data.borrower.minor
        );
    }
    assert_contains(&pdf.page_text(1), "Ayşe Yılmaz");
    assert_contains(&pdf.page_text(2), "Lukas Weiß");
    assert_contains(&pdf.page_text(4), "Björn Größer");

    let teacher_page = pdf.page_text(5);
    assert_contains(&teacher_page, "Dr. Petra Groß");
    assert_contains(&teacher_page, "Lehrkraft");
    assert_contains(&teacher_page, "bis auf Widerruf");
    assert_contains(&teacher_page, "ab dem 01.09.2025 bis auf Widerruf");
    assert_contains(&teacher_page, "keine Mängel vermerkt");
}

#[test]
fn long_but_realistic_data_still_fits_one_page() {
    let template = AgreementTemplate::default_german().unwrap();
    let mut data = pupil(
        987_654,
        "Maximiliane Hohenzollern-Schwarzenberg",
        "10c",
        "SMPXK2Q9HG7FLONG",
        true,
    );
    data.authority.name = "Landkreis Mecklenburgische Seenplatte".to_owned();
    data.school.name = "Städtische Gemeinschaftsschule Friedrich-Wilhelm-von-Steuben".to_owned();
    data.borrower.username = Some("maximiliane.hohenzollern-schwarzenberg".to_owned());
    data.device.model = Some("ThinkPad X13 Yoga Gen 4 (LTE)".to_owned());
    data.accessories = vec![
        "Schutzhülle mit Tastatur".to_owned(),
        "USB-C-Netzteil 65 W".to_owned(),
        "USB-C-Kabel 2 m".to_owned(),
        "Eingabestift mit Ersatzspitzen".to_owned(),
        "Kopfhörer".to_owned(),
        "Tragetasche".to_owned(),
    ];
    data.condition = Some(
        "Kratzer am Displayrahmen oben links, Gehäuseecke unten rechts leicht eingedellt, \
         Akku-Kapazität laut Diagnose 87 Prozent"
            .to_owned(),
    );
    let pdf = render(&template, &[data]);
    assert_eq!(pdf.pages(), 1);
    assert_contains(&pdf.text(), "Unterschrift der Erziehungsberechtigten");
}

const CUSTOM_TEMPLATE: &str = r#"
title = "Nutzungsvereinbarung für ein Schul-iPad"
letterhead = ["Stadt Musterstadt", "Der Oberbürgermeister – Schulverwaltungsamt", "Rathausplatz 1, 12345 Musterstadt"]

[[clauses]]
heading = "Überlassung"
text = """
Die {school} überlässt {borrower} das Gerät {device} {loan_period}.
Preise in {{Euro}}: keine.
"""

[[clauses]]
heading = "Pflichten"
text = """
Es gilt:

- pfleglich behandeln,
- Schäden sofort melden.
"""

[signatures]
guardians = "Unterschrift einer sorgeberechtigten Person"
"#;

#[test]
fn an_authority_template_changes_title_letterhead_and_clauses() {
    let template = AgreementTemplate::from_toml_str(CUSTOM_TEMPLATE).unwrap();
    assert_eq!(template.clauses().len(), 2);
    let pdf = render(
        &template,
        &[pupil(42, "Jörg Müller", "7b", "DMPXK2Q9HG7F", true)],
    );
    let text = pdf.text();

    assert_contains(&text, "Nutzungsvereinbarung für ein Schul-iPad");
    assert_contains(&text, "Der Oberbürgermeister – Schulverwaltungsamt");
    assert_contains(&text, "§ 1 Überlassung");
    // The sentence may wrap; compare it with the line breaks taken out.
    let flowing = flowing(&text);
    assert_contains(
        &flowing,
        "Die Gesamtschule Am Weißen Tor überlässt Jörg Müller das Gerät Tablet Apple iPad \
         (10. Generation) vom 01.09.2025 bis zum 31.07.2026.",
    );
    assert_contains(&text, "Preise in {Euro}: keine.");
    assert_contains(&text, "• pfleglich behandeln,");
    assert_contains(&text, "Unterschrift einer sorgeberechtigten Person");
    // What the file leaves out keeps the default.
    assert_contains(&text, "Unterschrift der entleihenden Person");
    assert!(!text.contains("Leihvertrag über ein digitales Endgerät"));
    assert!(!text.contains("Sorgfaltspflichten"));
    assert!(!text.contains("Unterschrift der Erziehungsberechtigten"));
}

#[test]
fn a_template_file_is_read_and_a_missing_one_is_named() {
    let path = std::env::temp_dir().join(format!(
        "bestand-agreement-template-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, CUSTOM_TEMPLATE).unwrap();
    let template = AgreementTemplate::from_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        template.unwrap().title(),
        "Nutzungsvereinbarung für ein Schul-iPad"
    );

    let missing = Path::new("/nonexistent/leihvertrag.toml");
    let error = AgreementTemplate::from_file(missing).unwrap_err();
    assert!(
        matches!(error, AgreementError::Unreadable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("/nonexistent/leihvertrag.toml"));
}

#[test]
fn an_unknown_placeholder_is_rejected_when_loading_and_named() {
    let error = AgreementTemplate::from_toml_str(
        r#"
[[clauses]]
heading = "Rückgabe"
text = "Rückgabe bis {rueckgabe_am} an die {school}."
"#,
    )
    .unwrap_err();
    let message = error.to_string();
    match error {
        AgreementError::Template {
            problem:
                TemplateProblem::UnknownPlaceholder {
                    placeholder,
                    location,
                },
            ..
        } => {
            assert_eq!(placeholder, "rueckgabe_am");
            assert_eq!(location, "text of clause 1 (Rückgabe)");
        }
        other => panic!("expected an unknown placeholder, got {other:?}"),
    }
    assert!(message.contains("{rueckgabe_am}"), "{message}");
    assert!(
        message.contains("{due_on}"),
        "lists the known ones: {message}"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    for (toml_text, key) in [
        ("titel = \"Leihvertrag\"", "titel"),
        (
            "[[clauses]]\nheading = \"A\"\ntext = \"B\"\nnote = \"C\"",
            "note",
        ),
        ("[signatures]\nguardian = \"Eltern\"", "guardian"),
    ] {
        let error = AgreementTemplate::from_toml_str(toml_text).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(
                error,
                AgreementError::Template {
                    problem: TemplateProblem::Toml { .. },
                    ..
                }
            ),
            "{message}"
        );
        assert!(message.contains(key), "{key} not named in: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn template_text_the_font_cannot_print_is_rejected() {
    // Polish and Turkish are printable now; the embedded font has no Chinese.
    AgreementTemplate::from_toml_str("title = \"Umowa użyczenia – Ödünç sözleşmesi\"").unwrap();
    let error = AgreementTemplate::from_toml_str("title = \"借用契约\"").unwrap_err();
    assert!(
        matches!(
            error,
            AgreementError::Template {
                problem: TemplateProblem::Unprintable {
                    character: '借',
                    ..
                },
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("title"), "{error}");
}

/// Names as a directory delivers them, in the scripts of pupils in German schools.
const NAMES_IN_EVERY_SCRIPT: [&str; 10] = [
    "Şükrü Yılmaz",
    "Ayşe Güneş",
    "Łukasz Wójcik",
    "Małgorzata Żółć",
    "Nguyễn Thị Phương",
    "Trần Văn Đức",
    "Анна Иванова",
    "Γιώργος Παπαδόπουλος",
    "Ștefan Ionuț",
    "محمد العلي",
];

#[test]
fn names_in_every_script_print_as_written_in_an_embedded_subset_font() {
    let template = AgreementTemplate::default_german().unwrap();
    let agreements: Vec<AgreementData> = NAMES_IN_EVERY_SCRIPT
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let loan_id = index as i64 + 1;
            pupil(loan_id, name, "5a", &format!("SERIAL{loan_id:04}"), true)
        })
        .collect();
    let pdf = render(&template, &agreements);
    assert_eq!(pdf.pages(), agreements.len(), "one page per agreement");

    for (index, name) in NAMES_IN_EVERY_SCRIPT.iter().enumerate() {
        let page = flowing(&pdf.page_text(index + 1));
        assert_contains(&page, &format!("Name: {name}"));
        assert_no_presentation_forms(&page);
    }

    let fonts = pdf.fonts();
    for face in ["DejaVuSansCondensed", "DejaVuSansCondensed-Bold"] {
        let line = fonts
            .lines()
            .find(|line| {
                line.split_whitespace()
                    .next()
                    .and_then(|name| name.split_once('+'))
                    .is_some_and(|(_, name)| name == face)
            })
            .unwrap_or_else(|| panic!("{face} not among the PDF's fonts:\n{fonts}"));
        // name type encoding emb sub uni object ID: embedded, subset, with a ToUnicode map.
        let columns: Vec<&str> = line.split_whitespace().collect();
        let flags = &columns[columns.len() - 5..columns.len() - 2];
        assert_eq!(flags, ["yes", "yes", "yes"], "{face} in:\n{fonts}");
    }
}

/// Text as a reader follows it: without the line layout, and without the embedding marks
/// (U+202A to U+202E) pdftotext puts around a right-to-left span.
fn flowing(text: &str) -> String {
    text.replace(|ch| ('\u{202a}'..='\u{202e}').contains(&ch), "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn an_arabic_name_reads_right_to_left_within_a_german_sentence() {
    let clause = "Die Schule überlässt {borrower} (Klasse {class}) das Gerät {device}.";
    let template = AgreementTemplate::from_toml_str(&format!(
        "[[clauses]]\nheading = \"Überlassung\"\ntext = \"{clause}\""
    ))
    .unwrap();
    let pdf = render(
        &template,
        &[pupil(9, "محمد العلي", "5a", "SERIAL0009", true)],
    );
    let words = pdf.page_words(1);
    let sentence_line = words
        .iter()
        .rposition(|(_, word)| word == "überlässt")
        .unwrap_or_else(|| panic!("no \"überlässt\" among {words:?}"));
    let line: Vec<&str> = words[sentence_line..]
        .iter()
        .take(4)
        .map(|(_, word)| word.as_str())
        .collect();
    let reversed = |word: &str| word.chars().rev().collect::<String>();
    // From left to right on the page: the German words, then the name's second word, then its
    // first (Arabic reads right to left), then the German sentence goes on.
    assert_eq!(
        line,
        [
            "überlässt",
            reversed("العلي").as_str(),
            reversed("محمد").as_str(),
            "(Klasse"
        ],
        "{words:?}"
    );
    let x: Vec<f32> = words[sentence_line..sentence_line + 4]
        .iter()
        .map(|(x, _)| *x)
        .collect();
    assert!(x.windows(2).all(|pair| pair[0] < pair[1]), "{x:?}");

    // pdftotext's reading order gives the name as typed; it draws the "(" into the
    // right-to-left span, which is its own guess, not what the page shows.
    let text = flowing(&pdf.text());
    assert_contains(&text, "überlässt");
    assert_contains(&text, "محمد العلي");
    assert_contains(&text, "Klasse 5a) das Gerät Tablet Apple");
    assert_no_presentation_forms(&text);
}

/// The page draws Arabic letters in their joined forms; its text must still give the letters
/// themselves (the font's ToUnicode map carries them), not presentation forms.
fn assert_no_presentation_forms(page: &str) {
    let presentation_forms = page
        .chars()
        .filter(|ch| {
            ('\u{fb50}'..='\u{fdff}').contains(ch) || ('\u{fe70}'..='\u{feff}').contains(ch)
        })
        .count();
    assert_eq!(presentation_forms, 0, "{page}");
}

#[test]
fn nothing_to_print_is_an_error() {
    let template = AgreementTemplate::default_german().unwrap();
    assert!(matches!(
        render_agreements(&template, &[]),
        Err(AgreementError::NoAgreements)
    ));
}

#[test]
fn the_same_loans_give_the_same_bytes() {
    let template = AgreementTemplate::default_german().unwrap();
    let loans = [pupil(7, "Jörg Müller", "7b", "DMPXK2Q9HG7F", true)];
    assert_eq!(
        render_agreements(&template, &loans).unwrap(),
        render_agreements(&template, &loans).unwrap()
    );
}

#[test]
fn the_example_in_the_docs_is_a_valid_template() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/loan-agreement.md"),
    )
    .unwrap();
    let example = docs
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml example in docs/loan-agreement.md");
    let template = AgreementTemplate::from_toml_str(example).unwrap();
    assert_eq!(template.title(), "Leihvertrag über ein schulisches iPad");
    assert_eq!(template.clauses().len(), 3);
    assert_eq!(template.letterhead().len(), 3);
}

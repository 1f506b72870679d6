//! The README's first command: `bestand demo` as a new user runs it, a separate process that
//! starts its own PostgreSQL and the mock sources, and tells the whole story (syncs, loans,
//! procurement, the service desk) with the files it promises, on a small fleet.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use calamine::{open_workbook_from_rs, Reader, Xlsx};

fn bestand_bin() -> PathBuf {
    std::env::var_os("BESTAND_BIN")
        .map(PathBuf::from)
        .expect("BESTAND_BIN names the bestand binary; run the tests with `cargo xtask test`")
}

/// The number after `word` on the line of `output` that contains `line`.
fn number_after(output: &str, line: &str, word: &str) -> u64 {
    let found = output
        .lines()
        .find(|l| l.contains(line))
        .unwrap_or_else(|| panic!("no line with {line:?} in:\n{output}"));
    let rest = &found[found.find(word).unwrap_or_else(|| panic!("{found}")) + word.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in {found:?}"))
}

#[test]
fn the_demo_tells_the_whole_story_and_writes_its_files() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = std::process::Command::new(bestand_bin())
        .args(["demo", "--devices", "600", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("bestand runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every source was read; the service desk's tickets all arrived.
    for step in [
        "First read of UCS@school",
        "First sync of Jamf Pro: succeeded",
        "First sync of Intune: succeeded",
        "First sync of Relution",
        "First read of Zammad (tickets linked to their devices): succeeded",
    ] {
        assert!(stdout.contains(step), "{step:?} missing:\n{stdout}");
    }
    assert_eq!(
        number_after(&stdout, "First read of Zammad", "tickets fetched"),
        6000
    );
    // Procurement: the purchases file is imported without refusals, the forecast and the proof
    // of use are printed.
    assert_eq!(number_after(&stdout, "row(s) refused", "ambiguous"), 0);
    assert!(number_after(&stdout, "row(s) refused", "matched") > 0);
    assert!(stdout.contains("Replacement forecast"), "{stdout}");
    assert!(stdout.contains("Verwendungsnachweis DP-2019"), "{stdout}");
    // The service desk: tickets in the last quarter, forwarded tickets measured from forwarding.
    assert!(
        number_after(&stdout, "open at the end", "opened") > 0,
        "{stdout}"
    );
    assert!(
        number_after(&stdout, "forwarded to Muster IT GmbH", "GmbH:") > 0,
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("forwarded to Muster IT GmbH") && l.contains("median")),
        "{stdout}"
    );
    // The files it names: the forecast as a workbook and a chart, the ticket figures.
    let svg = std::fs::read_to_string(dir.join("forecast.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Ersatzbeschaffung"));
    let forecast = std::fs::read(dir.join("forecast.xlsx")).unwrap();
    let forecast: Xlsx<_> = open_workbook_from_rs(Cursor::new(forecast)).unwrap();
    assert!(forecast.sheet_names().contains(&"Prognose".to_string()));
    let tickets = std::fs::read(dir.join("tickets.xlsx")).unwrap();
    let mut tickets: Xlsx<_> = open_workbook_from_rs(Cursor::new(tickets)).unwrap();
    let figures = tickets.worksheet_range("Kennzahlen").unwrap();
    assert!(figures.height() > 100, "{} rows", figures.height());
    let _ = std::fs::remove_dir_all(&dir);
}

//! The CSV files people exchange with spreadsheets, read and written in one place: German
//! Excel saves "CSV (Trennzeichen-getrennt)" in Windows-1252 with `;` between fields, other
//! exports start with a UTF-8 byte order mark, and a cell that starts with `=` runs as a
//! formula when staff open a file bestand wrote. Every import (the file source, the loan
//! import) reads through `decode` and `reader_builder`, every `--format csv` writes through
//! `write_csv`.

use std::borrow::Cow;
use std::io::Write;

use serde::Deserialize;

/// A text encoding a CSV file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl Encoding {
    /// The name configuration and flags use.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1252 => "windows-1252",
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;

    fn from_str(text: &str) -> Result<Encoding, String> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "windows-1252" | "cp1252" => Ok(Encoding::Windows1252),
            _ => Err(format!(
                "unknown encoding '{text}' (known: utf-8, windows-1252)"
            )),
        }
    }
}

/// Why a file cannot be read as text. Lines and columns count from 1; the column counts
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "line {line}, column {column}: byte 0x{byte:02X} is not UTF-8 (set the encoding to \
         windows-1252 if the file was saved by Excel as \"CSV (Trennzeichen-getrennt)\")"
    )]
    NotUtf8 { line: u64, column: u64, byte: u8 },
    #[error(
        "line {line}, column {column}: byte 0x{byte:02X} is not text in windows-1252 either; \
         is this a CSV file?"
    )]
    NotText { line: u64, column: u64, byte: u8 },
    #[error(
        "the file is UTF-16 (Excel's \"Unicode-Text\"); save it as \"CSV UTF-8\" or \
         \"CSV (Trennzeichen-getrennt)\""
    )]
    Utf16,
    #[error(
        "the file starts with a UTF-8 byte order mark but the encoding is set to windows-1252"
    )]
    BomContradicts,
}

/// A decoded file, ready for the `csv` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvText {
    pub text: String,
    /// What the bytes were read as: the one set, or what was detected.
    pub encoding: Encoding,
    /// The field separator: the one set, or what the header line shows.
    pub delimiter: u8,
}

impl CsvText {
    /// A `csv` reader builder with the delimiter set; callers add trimming and flexibility.
    pub fn reader_builder(&self) -> csv::ReaderBuilder {
        let mut builder = csv::ReaderBuilder::new();
        builder.delimiter(self.delimiter);
        builder
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a CSV file and settles its delimiter.
///
/// A UTF-8 byte order mark is dropped. Without a set `encoding`, bytes that are valid UTF-8
/// are read as UTF-8 and anything else as Windows-1252 (every byte Excel writes is text
/// there); with `Utf8` set, a byte that is not UTF-8 is an error naming its line and column.
/// Without a set `delimiter`, the header line decides: the most frequent of `;`, tab and `,`
/// outside quotes (`,` when it has none, `;` before tab before `,` on a tie).
pub fn decode(
    bytes: &[u8],
    encoding: Option<Encoding>,
    delimiter: Option<u8>,
) -> Result<CsvText, DecodeError> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(DecodeError::Utf16);
    }
    let (bytes, bom) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let (text, encoding) = match (encoding, std::str::from_utf8(bytes)) {
        (Some(Encoding::Windows1252), _) if bom => return Err(DecodeError::BomContradicts),
        (Some(Encoding::Windows1252), _) => (windows_1252(bytes)?, Encoding::Windows1252),
        (_, Ok(text)) => (text.to_string(), Encoding::Utf8),
        (Some(Encoding::Utf8), Err(error)) => {
            let at = error.valid_up_to();
            let (line, column) = line_and_column(bytes, at);
            return Err(DecodeError::NotUtf8 {
                line,
                column,
                byte: bytes.get(at).copied().unwrap_or_default(),
            });
        }
        (None, Err(_)) if bom => {
            // A byte order mark says UTF-8; a broken byte after it is not Windows-1252.
            return decode(bytes, Some(Encoding::Utf8), delimiter);
        }
        (None, Err(_)) => (windows_1252(bytes)?, Encoding::Windows1252),
    };
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(&text));
    Ok(CsvText {
        text,
        encoding,
        delimiter,
    })
}

/// Windows-1252 as Excel writes it. NUL and the five bytes the code page leaves undefined
/// are refused: they mean the file is not text.
fn windows_1252(bytes: &[u8]) -> Result<String, DecodeError> {
    if let Some(at) = bytes
        .iter()
        .position(|b| matches!(b, 0x00 | 0x81 | 0x8D | 0x8F | 0x90 | 0x9D))
    {
        let (line, column) = line_and_column(bytes, at);
        return Err(DecodeError::NotText {
            line,
            column,
            byte: bytes[at],
        });
    }
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    Ok(text.into_owned())
}

/// Line and character column of byte `at`; the bytes before it are read leniently so that
/// the column counts what an editor shows.
fn line_and_column(bytes: &[u8], at: usize) -> (u64, u64) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u64
        + 1;
    (line, column)
}

/// The separator the header line uses (see `decode`).
fn detect_delimiter(text: &str) -> u8 {
    let mut counts = [(b';', 0usize), (b'\t', 0), (b',', 0)];
    let mut quoted = false;
    for byte in text.bytes() {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(slot) = counts.iter_mut().find(|(c, _)| *c == byte) {
                    slot.1 += 1;
                }
            }
            _ => {}
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or_default();
    if best == 0 {
        return b',';
    }
    counts
        .iter()
        .find(|(_, n)| *n == best)
        .map_or(b',', |(c, _)| *c)
}

/// The line of the CSV record starting at byte `at` of `text`. The `csv` reader's own line
/// count and offset include blank lines before a record, so those are stepped over first.
pub fn record_line(text: &str, at: u64) -> u64 {
    LineCounter::default().line(text, at)
}

/// `record_line` for the records of one file in order: it counts the line breaks between the
/// previous record and this one only, so reading a file stays linear in its size (counting
/// from the start for every record took 45 s for 50,000 rows).
#[derive(Debug, Default)]
pub struct LineCounter {
    /// Bytes counted so far, and the line breaks among them.
    counted: usize,
    breaks: u64,
}

impl LineCounter {
    /// The line of the record starting at byte `at` of `text`; `at` must not go backwards
    /// between calls (a smaller one is counted from the start again).
    pub fn line(&mut self, text: &str, at: u64) -> u64 {
        let bytes = text.as_bytes();
        let mut at = usize::try_from(at).unwrap_or(usize::MAX).min(bytes.len());
        while bytes.get(at).is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            at += 1;
        }
        if at < self.counted {
            *self = LineCounter::default();
        }
        self.breaks += bytes[self.counted..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.counted = at;
        self.breaks + 1
    }
}

/// Whether a spreadsheet would run `cell` as a formula, counting cells already neutralised
/// by a leading `'` (so that `unneutralise` undoes exactly what `neutralise` did).
fn needs_quote(cell: &str) -> bool {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => true,
        Some('\'') => needs_quote(&cell[1..]),
        _ => false,
    }
}

/// A cell as bestand writes it: one that starts with `=`, `+`, `-`, `@`, tab or carriage
/// return gets a leading `'` (OWASP's advice against CSV formula injection), so a device or
/// pupil name a source delivered never runs as a formula in Excel or LibreOffice.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if needs_quote(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A cell as read back: the `'` that `neutralise` put in front is dropped, nothing else.
pub fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_quote(rest) => rest,
        _ => cell,
    }
}

/// Writes a header row and rows as CSV (`,`-separated, UTF-8, quoted where needed), every
/// cell neutralised.
pub fn write_csv<W, I>(out: W, headers: &[&str], rows: I) -> Result<(), csv::Error>
where
    W: Write,
    I: IntoIterator<Item = Vec<String>>,
{
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(headers.iter().map(|cell| neutralise(cell).into_owned()))?;
    for row in rows {
        writer.write_record(row.iter().map(|cell| neutralise(cell).into_owned()))?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lines_counted_in_order_are_the_lines_counted_from_the_start() {
        // Records at bytes 0, 4, 9 (after a blank line) and 14 (after "\r\n\r\n").
        let text = "a;b\nc;d\n\ne;f\r\n\r\ng;h\n";
        let mut counter = LineCounter::default();
        let lines: Vec<u64> = [0, 4, 8, 13]
            .iter()
            .map(|&at| counter.line(text, at))
            .collect();
        assert_eq!(lines, vec![1, 2, 4, 6]);
        for at in [0, 4, 8, 13] {
            assert_eq!(record_line(text, at), LineCounter::default().line(text, at));
        }
        // Going back starts over instead of answering wrong.
        assert_eq!(counter.line(text, 4), 2);
    }

    fn records(text: &CsvText) -> Result<Vec<Vec<String>>, csv::Error> {
        text.reader_builder()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.text.as_bytes())
            .records()
            .map(|record| {
                Ok(record?
                    .iter()
                    .map(|c| unneutralise(c).to_string())
                    .collect())
            })
            .collect()
    }

    #[test]
    fn excel_windows_1252_with_semicolons_is_detected() {
        // "Gerät;Preis\nTafel;1.299,00 €" as German Excel saves it.
        let bytes = b"Ger\xE4t;Preis\r\nTafel;1.299,00 \x80\r\n";
        let text = decode(bytes, None, None).unwrap();
        assert_eq!(text.encoding, Encoding::Windows1252);
        assert_eq!(text.delimiter, b';');
        assert_eq!(
            records(&text).unwrap(),
            vec![vec!["Gerät", "Preis"], vec!["Tafel", "1.299,00 €"]]
        );
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_utf8_kept() {
        let text = decode("\u{feff}name,preis\nÜbung,5 €\n".as_bytes(), None, None).unwrap();
        assert_eq!(text.encoding, Encoding::Utf8);
        assert_eq!(text.delimiter, b',');
        assert!(text.text.starts_with("name,"), "{:?}", text.text);
    }

    #[test]
    fn set_utf8_names_line_and_column_of_a_bad_byte() {
        let error = decode(b"name;raum\nT\xFCr;1\n", Some(Encoding::Utf8), None).unwrap_err();
        assert_eq!(
            error,
            DecodeError::NotUtf8 {
                line: 2,
                column: 2,
                byte: 0xFC
            }
        );
        assert!(
            error.to_string().starts_with("line 2, column 2:"),
            "{error}"
        );
        // After a byte order mark a broken byte is an error too, not a reason to guess.
        assert!(matches!(
            decode(b"\xEF\xBB\xBFa\n\xFC\n", None, None),
            Err(DecodeError::NotUtf8 { line: 2, .. })
        ));
    }

    #[test]
    fn set_windows_1252_reads_even_valid_utf8_as_windows_1252() {
        let text = decode("Ä".as_bytes(), Some(Encoding::Windows1252), None).unwrap();
        assert_eq!(text.text, "Ã„");
        assert_eq!(
            decode(b"\xEF\xBB\xBFa", Some(Encoding::Windows1252), None),
            Err(DecodeError::BomContradicts)
        );
    }

    #[test]
    fn binary_and_utf16_files_are_refused() {
        assert_eq!(
            decode(b"\xFF\xFEa\x00", None, None),
            Err(DecodeError::Utf16)
        );
        assert!(matches!(
            decode(b"ab\n\xFCc\x00", None, None),
            Err(DecodeError::NotText {
                line: 2,
                column: 3,
                byte: 0
            })
        ));
    }

    #[test]
    fn the_delimiter_comes_from_the_header_line_or_the_setting() {
        let delimiter = |text: &str| decode(text.as_bytes(), None, None).unwrap().delimiter;
        assert_eq!(delimiter("a;b;c\n1,5;2;3"), b';');
        assert_eq!(delimiter("a,b,c\n1;2;3"), b',');
        assert_eq!(delimiter("a\tb\n1,5\t2"), b'\t');
        assert_eq!(delimiter("\"a;x\",b\n"), b',');
        assert_eq!(delimiter("device\nx"), b',');
        assert_eq!(decode(b"a;b", None, Some(b',')).unwrap().delimiter, b',');
    }

    #[test]
    fn formula_cells_are_neutralised_and_read_back() {
        for (cell, written) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+49 30 1234", "'+49 30 1234"),
            ("-5", "'-5"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("'x", "'x"),
            ("iPad 5a", "iPad 5a"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell), written, "{cell:?}");
            assert_eq!(unneutralise(written), cell, "{written:?}");
        }
        let mut out = Vec::new();
        write_csv(&mut out, &["name"], [vec!["=1+1".to_string()]]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name\n'=1+1\n");
    }

    proptest! {
        #[test]
        fn what_bestand_writes_it_reads_back_the_same(
            rows in (1usize..5).prop_flat_map(|width| {
                proptest::collection::vec(proptest::collection::vec("\\PC{0,8}|[=+@\t\r\n'\";,-]{0,4}", width), 0..6)
                    .prop_map(move |rows| (width, rows))
            })
        ) {
            let (width, rows) = rows;
            let headers: Vec<String> = (0..width).map(|i| format!("column {i}")).collect();
            let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            let mut out = Vec::new();
            write_csv(&mut out, &header_refs, rows.clone()).unwrap();
            let text = decode(&out, None, None).unwrap();
            prop_assert_eq!(text.encoding, Encoding::Utf8);
            let read = records(&text).unwrap();
            prop_assert_eq!(&read[0], &headers);
            prop_assert_eq!(&read[1..], &rows[..]);
        }

        #[test]
        fn any_bytes_give_rows_or_a_clear_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(text) = decode(&bytes, None, None) {
                let _ = records(&text);
            }
            let _ = decode(&bytes, Some(Encoding::Utf8), None);
            let _ = decode(&bytes, Some(Encoding::Windows1252), Some(b';'));
        }

        #[test]
        fn valid_utf8_is_never_changed(text in "\\PC{0,40}") {
            let decoded = decode(text.as_bytes(), None, None).unwrap();
            prop_assert_eq!(decoded.text.as_str(), text.strip_prefix('\u{feff}').unwrap_or(&text));
        }
    }
}

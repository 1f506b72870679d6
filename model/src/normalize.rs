//! Identifier normalization, so that the same device matches across sources, and the reading
//! of the dates people type, so that every import refuses the same impossible ones.

use chrono::{Datelike, NaiveDate};

/// Serial numbers that sources send when they do not know the real one.
const PLACEHOLDER_SERIALS: &[&str] = &[
    "",
    "0",
    "00000000",
    "000000000000",
    "NONE",
    "NULL",
    "N/A",
    "NA",
    "UNKNOWN",
    "-",
    "DEFAULT STRING",
    "TO BE FILLED BY O.E.M.",
    "SYSTEM SERIAL NUMBER",
    "123456789",
];

/// Trims and upper-cases a serial number; placeholders become `None`.
pub fn serial_number(raw: Option<&str>) -> Option<String> {
    let serial: String = raw?.trim().to_uppercase();
    if PLACEHOLDER_SERIALS.contains(&serial.as_str()) || serial.chars().all(|c| c == '0') {
        return None;
    }
    Some(serial)
}

/// Lower-case, colon-separated MAC address; `None` for anything that is not 12 hex digits
/// (separated by `:`, `-`, `.` or spaces, or not at all) or is all zeros. Other characters
/// make it `None` too: "WLAN a4:83:e7:12:34:5" would otherwise lend its `A` to a wrong MAC.
pub fn mac_address(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    if !raw
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '-' | '.') || c.is_whitespace())
    {
        return None;
    }
    let hex: String = raw
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 12 || hex.chars().all(|c| c == '0') {
        return None;
    }
    let pairs: Vec<&str> = (0..6).filter_map(|i| hex.get(i * 2..i * 2 + 2)).collect();
    Some(pairs.join(":"))
}

/// Whether a MAC address (in the form `mac_address` gives) can belong to one device only.
/// Addresses with the locally administered bit set are made up by software (the private,
/// randomised Wi-Fi addresses of phones and tablets, virtual machines, some placeholders such
/// as iOS's `02:00:00:00:00:00`), and group addresses (the multicast bit, broadcast among
/// them) name no device at all; both are kept as reported but never used to match.
pub fn mac_identifies_one_device(mac: &str) -> bool {
    let Some(first_octet) = mac
        .get(..2)
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
    else {
        return false;
    };
    const GROUP: u8 = 0b01;
    const LOCALLY_ADMINISTERED: u8 = 0b10;
    first_octet & (GROUP | LOCALLY_ADMINISTERED) == 0
}

/// Trimmed, upper-case UDID; empty becomes `None`.
pub fn udid(raw: Option<&str>) -> Option<String> {
    let udid = raw?.trim().to_uppercase();
    (!udid.is_empty() && !udid.chars().all(|c| c == '0' || c == '-')).then_some(udid)
}

/// Digits of an IMEI; `None` unless 14 to 16 digits remain.
pub fn imei(raw: Option<&str>) -> Option<String> {
    let digits: String = raw?.chars().filter(|c| c.is_ascii_digit()).collect();
    ((14..=16).contains(&digits.len()) && !digits.chars().all(|c| c == '0')).then_some(digits)
}

/// Trimmed text; empty becomes `None`.
pub fn text(raw: Option<&str>) -> Option<String> {
    let text = raw?.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The years a date bestand reads may fall in. chrono's `%Y` takes `23` as the year 23, so
/// `31.08.23` would otherwise be read as a date two thousand years ago.
pub const DATE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

/// Reads a date as ISO 8601 (`2024-08-15`) or in one of `formats` (chrono's syntax, such as
/// `%d.%m.%Y`), refusing years outside `DATE_YEARS`.
pub fn date(text: &str, formats: &[&str]) -> Result<NaiveDate, DateError> {
    let text = text.trim();
    let parsed = std::iter::once("%Y-%m-%d")
        .chain(formats.iter().copied())
        .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
        .ok_or(DateError::NotADate)?;
    if !DATE_YEARS.contains(&parsed.year()) {
        return Err(DateError::Year(parsed.year()));
    }
    Ok(parsed)
}

/// Why a text is not a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("it is not a date")]
    NotADate,
    #[error(
        "its year {0} is not between {min} and {max} (write the year with four digits)",
        min = DATE_YEARS.start(),
        max = DATE_YEARS.end()
    )]
    Year(i32),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn serials_are_trimmed_upper_cased_and_placeholders_dropped() {
        assert_eq!(
            serial_number(Some("  dmpxk1abcdef ")),
            Some("DMPXK1ABCDEF".into())
        );
        assert_eq!(serial_number(Some("0")), None);
        assert_eq!(serial_number(Some("")), None);
        assert_eq!(serial_number(Some("0000")), None);
        assert_eq!(serial_number(Some("To be filled by O.E.M.")), None);
        assert_eq!(serial_number(None), None);
    }

    #[test]
    fn macs_are_lower_case_with_colons() {
        assert_eq!(
            mac_address(Some("A4-83-E7-12-34-56")),
            Some("a4:83:e7:12:34:56".into())
        );
        assert_eq!(
            mac_address(Some("a483.e712.3456")),
            Some("a4:83:e7:12:34:56".into())
        );
        assert_eq!(mac_address(Some("00:00:00:00:00:00")), None);
        assert_eq!(mac_address(Some("a4:83")), None);
        assert_eq!(mac_address(Some("WLAN a4:83:e7:12:34:5")), None);
        assert_eq!(mac_address(Some("a4:83:e7:12:34:5g")), None);
    }

    #[test]
    fn dates_with_four_digit_years_in_range() {
        let day = NaiveDate::from_ymd_opt(2023, 8, 31).unwrap();
        assert_eq!(date("2023-08-31", &[]), Ok(day));
        assert_eq!(date(" 31.08.2023 ", &["%d.%m.%Y"]), Ok(day));
        assert_eq!(date("31.08.2023", &[]), Err(DateError::NotADate));
        assert_eq!(date("31.08.23", &["%d.%m.%Y"]), Err(DateError::Year(23)));
        assert_eq!(date("2023-02-30", &[]), Err(DateError::NotADate));
    }

    proptest! {
        #[test]
        fn serials_normalise_idempotently(raw in "\\PC{0,20}") {
            let once = serial_number(Some(&raw));
            prop_assert_eq!(serial_number(once.as_deref()), once.clone());
        }

        #[test]
        fn macs_read_in_every_spelling_and_normalise_idempotently(
            bytes in proptest::array::uniform6(any::<u8>()),
            separator in prop_oneof![Just(":"), Just("-"), Just(""), Just(" ")],
            upper in any::<bool>(),
        ) {
            let hex: Vec<String> = bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
            let canonical = bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            let read = mac_address(Some(&hex.join(separator)));
            let expected = (bytes != [0; 6]).then_some(canonical);
            prop_assert_eq!(&read, &expected);
            prop_assert_eq!(mac_address(read.as_deref()), read.clone());
        }

        #[test]
        fn any_text_gives_a_mac_of_its_own_digits_or_none(raw in "\\PC{0,24}|[0-9a-fA-F:. -]{0,20}") {
            if let Some(mac) = mac_address(Some(&raw)) {
                let digits: String = raw.chars().filter(char::is_ascii_hexdigit).collect();
                prop_assert_eq!(mac.replace(':', ""), digits.to_lowercase());
            }
            let _ = imei(Some(&raw));
            let _ = udid(Some(&raw));
        }

        #[test]
        fn dates_read_back_the_same_in_both_spellings(days in 0u64..(300 * 366)) {
            let day = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Days::new(days);
            prop_assume!(DATE_YEARS.contains(&day.year()));
            for format in ["%Y-%m-%d", "%d.%m.%Y"] {
                prop_assert_eq!(date(&day.format(format).to_string(), &["%d.%m.%Y"]), Ok(day));
            }
        }

        #[test]
        fn any_text_gives_a_date_or_a_refusal(raw in "\\PC{0,16}|[0-9.-]{0,12}") {
            let _ = date(&raw, &["%d.%m.%Y", "%d.%m.%y", "%m/%d/%Y"]);
        }
    }

    #[test]
    fn only_universally_administered_unicast_macs_identify_a_device() {
        assert!(mac_identifies_one_device("a4:83:e7:12:34:56"));
        assert!(mac_identifies_one_device("00:1b:63:84:45:e6"));
        // Private Wi-Fi addresses: second-lowest bit of the first octet set.
        assert!(!mac_identifies_one_device("02:00:00:00:00:00"));
        assert!(!mac_identifies_one_device("da:a1:19:00:00:01"));
        assert!(!mac_identifies_one_device("a6:83:e7:12:34:56"));
        // Broadcast and multicast.
        assert!(!mac_identifies_one_device("ff:ff:ff:ff:ff:ff"));
        assert!(!mac_identifies_one_device("01:00:5e:00:00:fb"));
        assert!(!mac_identifies_one_device(""));
    }

    #[test]
    fn imei_keeps_digits_only() {
        assert_eq!(
            imei(Some("35 209900 176148 1")),
            Some("352099001761481".into())
        );
        assert_eq!(imei(Some("123")), None);
    }
}

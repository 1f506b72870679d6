//! Identifier normalization, so that the same device matches across sources.

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
/// or is all zeros.
pub fn mac_address(raw: Option<&str>) -> Option<String> {
    let hex: String = raw?
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

#[cfg(test)]
mod tests {
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

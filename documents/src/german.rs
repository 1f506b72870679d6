//! Numbers as German readers expect them (`12.345,67`), for the chart's axis labels and for
//! measuring how wide a workbook column must be; the workbook itself stores numbers and leaves
//! their display to the spreadsheet program's number formats.

use rust_decimal::{Decimal, RoundingStrategy};

/// `value` rounded half away from zero to `decimals` places, with `.` grouping thousands and
/// `,` before the decimals: `1234567.891` with 2 places is `1.234.567,89`.
pub fn number(value: Decimal, decimals: u32) -> String {
    let rounded = value.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero);
    // `-0,00` would be a rounding artefact, not a negative amount.
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let plain = format!("{:.*}", decimals as usize, rounded.abs());
    let (whole, fraction) = match plain.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (plain.as_str(), None),
    };
    let mut text = String::with_capacity(plain.len() + plain.len() / 3 + 1);
    if negative {
        text.push('-');
    }
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            text.push('.');
        }
        text.push(digit);
    }
    if let Some(fraction) = fraction {
        text.push(',');
        text.push_str(fraction);
    }
    text
}

/// An amount in euros: `1.234 €` with no decimals, `12.345,67 €` with two.
/// The space before the sign is a no-break space, so a label never breaks before it.
pub fn euros(value: Decimal, decimals: u32) -> String {
    format!("{}\u{a0}€", number(value, decimals))
}

/// `value` with as many decimals as it needs, at most `max_decimals`: `1,5` and `2`, as
/// Excel's "Standard" format shows them.
pub fn number_trimmed(value: Decimal, max_decimals: u32) -> String {
    let rounded = value
        .round_dp_with_strategy(max_decimals, RoundingStrategy::MidpointAwayFromZero)
        .normalize();
    number(rounded, rounded.scale())
}

/// A fraction as a percentage with one decimal: `0.125` is `12,5 %`.
pub fn percent(fraction: Decimal) -> String {
    format!("{}\u{a0}%", number(fraction * Decimal::ONE_HUNDRED, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("a decimal")
    }

    #[test]
    fn groups_thousands_with_dots_and_writes_a_decimal_comma() {
        assert_eq!(number(d("0"), 0), "0");
        assert_eq!(number(d("999"), 0), "999");
        assert_eq!(number(d("1000"), 0), "1.000");
        assert_eq!(number(d("1234567.891"), 2), "1.234.567,89");
        assert_eq!(number(d("12345.6"), 2), "12.345,60");
        assert_eq!(number(d("-1234.5"), 0), "-1.235");
        assert_eq!(number(d("-0.001"), 2), "0,00");
        assert_eq!(euros(d("1234"), 0), "1.234\u{a0}€");
        assert_eq!(euros(d("12345.67"), 2), "12.345,67\u{a0}€");
        assert_eq!(percent(d("0.125")), "12,5\u{a0}%");
        assert_eq!(number_trimmed(d("1.50"), 2), "1,5");
        assert_eq!(number_trimmed(d("2000.004"), 2), "2.000");
    }
}

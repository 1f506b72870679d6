//! The one reader of prices as people and vendors write them, so that `1.299,00 €` from a
//! procurement spreadsheet and `USD 1,299.00` from an MDM's free-text field end up as the same
//! figure, and a price that could mean two things is refused instead of guessed.
//!
//! A price is at most 9,999,999,999.99 with at most two decimal places: the inventory stores
//! `numeric(12, 2)`, which would round a third decimal place away without a word.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

/// A price as read: the amount (always with two decimal places) and the currency the text
/// named, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub amount: Decimal,
    /// ISO 4217 code, upper case; `None` when the text named no currency.
    pub currency: Option<String>,
}

/// Which separator is the decimal one when the text alone does not tell (`1.299`, `1,299`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Notation {
    /// `1.299,00`: `.` groups thousands, `,` is the decimal separator.
    German,
    /// `1,299.00`: `,` groups thousands, `.` is the decimal separator.
    English,
}

/// Why a text is not a price. The messages say what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("there is no amount")]
    Empty,
    #[error("a price cannot be negative")]
    Negative,
    #[error("'{0}' is not a number or currency")]
    NotANumber(String),
    #[error("it names more than one currency")]
    TwoCurrencies,
    #[error(
        "it is ambiguous: {whole} if '{separator}' groups thousands, {decimal} if it is the \
         decimal separator; write the cents (such as {whole},00 or {whole}.00)"
    )]
    Ambiguous {
        separator: char,
        whole: String,
        decimal: String,
    },
    #[error("the thousands are not grouped in threes")]
    Grouping,
    #[error("it has more than one decimal separator")]
    TwoDecimalSeparators,
    #[error("there are no digits before the decimal separator")]
    NoWholePart,
    #[error("there are no digits after the decimal separator")]
    NoDecimals,
    #[error("it has more than two decimal places")]
    TooManyDecimals,
    #[error("it is larger than 9,999,999,999.99")]
    TooLarge,
}

/// The largest amount the inventory can store.
const MAX_WHOLE_DIGITS: usize = 10;

/// Reads a price: German (`1.299,00`, `1.299,00 €`, `EUR 1.299,00`, `1299,5`, `1.299,-`),
/// English (`1,299.00`, `€1,299.00`, `USD 1299.00`) or plain (`1299`), with spaces,
/// non-breaking or thin spaces as thousands separators and a currency symbol (`€`, `$`, `£`)
/// or ISO code (or the word "Euro") before or after the number.
///
/// With both `.` and `,` the last is the decimal separator and the other must group the
/// thousands in threes. A single `.` or `,` followed by exactly three digits is refused as
/// ambiguous unless `notation` says which it is.
pub fn parse_price(text: &str, notation: Option<Notation>) -> Result<Price, PriceError> {
    let (number, currency) = split_currency(text.trim())?;
    if number.is_empty() {
        return Err(PriceError::Empty);
    }
    if number.starts_with(['-', '−'])
        || number.ends_with(['-', '−']) && dash_cents(number).is_none()
    {
        return Err(PriceError::Negative);
    }
    if number.starts_with('(') && number.ends_with(')') {
        // Accounting notation for a negative amount.
        return Err(PriceError::Negative);
    }
    let (whole, fraction) = split_number(number, notation)?;
    Ok(Price {
        amount: amount(&whole, &fraction)?,
        currency,
    })
}

/// Characters that group thousands besides `.` and `,`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{2009}' | '\u{202f}')
}

/// The currency symbols people type, and their codes.
const SYMBOLS: &[(char, &str)] = &[('€', "EUR"), ('$', "USD"), ('£', "GBP")];

/// Splits a currency symbol or three-letter code off either end.
fn split_currency(text: &str) -> Result<(&str, Option<String>), PriceError> {
    let mut rest = text;
    let mut found: Vec<String> = Vec::new();
    if let Some((code, after)) = leading_currency(rest) {
        found.push(code);
        rest = after.trim_matches(is_trimmable);
    }
    if let Some((code, before)) = trailing_currency(rest) {
        found.push(code);
        rest = before.trim_matches(is_trimmable);
    }
    match found.len() {
        0 | 1 => Ok((rest, found.pop())),
        _ => Err(PriceError::TwoCurrencies),
    }
}

fn is_trimmable(c: char) -> bool {
    c.is_whitespace() || is_space(c)
}

fn leading_currency(text: &str) -> Option<(String, &str)> {
    let first = text.chars().next()?;
    if let Some((symbol, code)) = SYMBOLS.iter().find(|(symbol, _)| *symbol == first) {
        return Some(((*code).to_string(), &text[symbol.len_utf8()..]));
    }
    let end = text
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(text.len());
    currency_word(&text[..end]).map(|code| (code, &text[end..]))
}

fn trailing_currency(text: &str) -> Option<(String, &str)> {
    let last = text.chars().next_back()?;
    if let Some((symbol, code)) = SYMBOLS.iter().find(|(symbol, _)| *symbol == last) {
        return Some(((*code).to_string(), &text[..text.len() - symbol.len_utf8()]));
    }
    let start = text.rfind(|c: char| !c.is_alphabetic()).map_or(0, |at| {
        at + text[at..].chars().next().map_or(1, char::len_utf8)
    });
    currency_word(&text[start..]).map(|code| (code, &text[..start]))
}

/// A three-letter ISO code in any case, or "Euro".
fn currency_word(word: &str) -> Option<String> {
    if word.eq_ignore_ascii_case("euro") {
        Some("EUR".to_string())
    } else if word.len() == 3 && word.chars().all(|c| c.is_ascii_alphabetic()) {
        Some(word.to_ascii_uppercase())
    } else {
        None
    }
}

/// For German `1.299,-` (also `,--` and `.-`), a whole amount: the number before the ending
/// and the decimal separator the ending names.
fn dash_cents(number: &str) -> Option<(&str, char)> {
    let stripped = number.trim_end_matches('-');
    let dashes = number.len() - stripped.len();
    if !(1..=2).contains(&dashes) {
        return None;
    }
    let separator = stripped
        .chars()
        .next_back()
        .filter(|c| matches!(c, ',' | '.'))?;
    let before = &stripped[..stripped.len() - 1];
    before
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_digit())
        .then_some((before, separator))
}

/// The whole and decimal digits of `number`, its separators checked.
fn split_number(number: &str, notation: Option<Notation>) -> Result<(String, String), PriceError> {
    if let Some((before, separator)) = dash_cents(number) {
        if before.contains(separator) {
            return Err(PriceError::TwoDecimalSeparators);
        }
        return Ok((grouped_digits(before)?, String::new()));
    }
    if !number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',') || is_space(c))
    {
        return Err(PriceError::NotANumber(number.to_string()));
    }
    let dots = number.matches('.').count();
    let commas = number.matches(',').count();
    let spaced = number.contains(is_space);
    let decimal = match (dots, commas) {
        (0, 0) => None,
        (_, 0) | (0, _) => {
            let separator = if dots > 0 { '.' } else { ',' };
            let count = dots + commas;
            let before = number.split(separator).next().unwrap_or_default();
            let after = number.rsplit(separator).next().unwrap_or_default();
            if count > 1 {
                // Only thousands can repeat.
                None
            } else if spaced || before.len() > 3 || before.starts_with('0') {
                // Spaces already group the thousands; `12345.678` and `0.299` cannot be
                // thousands at all.
                Some(separator)
            } else if after.len() == 3 && after.chars().all(|c| c.is_ascii_digit()) {
                match notation {
                    Some(Notation::German) => (separator == ',').then_some(','),
                    Some(Notation::English) => (separator == '.').then_some('.'),
                    None => return Err(ambiguous(number, separator)),
                }
            } else {
                Some(separator)
            }
        }
        _ => {
            let last_dot = number.rfind('.').unwrap_or_default();
            let last_comma = number.rfind(',').unwrap_or_default();
            let separator = if last_dot > last_comma { '.' } else { ',' };
            if number.matches(separator).count() > 1 {
                return Err(PriceError::TwoDecimalSeparators);
            }
            Some(separator)
        }
    };
    let Some(separator) = decimal else {
        return Ok((grouped_digits(number)?, String::new()));
    };
    let (whole, fraction) = number
        .rsplit_once(separator)
        .unwrap_or((number, Default::default()));
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        // Thousands after the decimal separator, as in `1,299.000,5`.
        return Err(PriceError::Grouping);
    }
    if whole.is_empty() {
        return Err(PriceError::NoWholePart);
    }
    if fraction.is_empty() {
        return Err(PriceError::NoDecimals);
    }
    Ok((grouped_digits(whole)?, fraction.to_string()))
}

fn ambiguous(number: &str, separator: char) -> PriceError {
    PriceError::Ambiguous {
        separator,
        whole: number.replace(separator, ""),
        decimal: number.replace(separator, "."),
    }
}

/// The digits of a whole part whose thousands may be grouped by one kind of separator, each
/// group after the first exactly three digits long.
fn grouped_digits(whole: &str) -> Result<String, PriceError> {
    let separators: Vec<char> = whole.chars().filter(|c| !c.is_ascii_digit()).collect();
    let Some(&first) = separators.first() else {
        if whole.is_empty() {
            return Err(PriceError::NoWholePart);
        }
        return Ok(whole.to_string());
    };
    let same_kind = |c: &char| {
        if is_space(first) {
            is_space(*c)
        } else {
            *c == first
        }
    };
    if !separators.iter().all(same_kind) {
        return Err(PriceError::Grouping);
    }
    let groups: Vec<&str> = whole.split(|c: char| !c.is_ascii_digit()).collect();
    let (head, tail) = groups.split_first().ok_or(PriceError::Grouping)?;
    if !(1..=3).contains(&head.len()) || tail.iter().any(|group| group.len() != 3) {
        return Err(PriceError::Grouping);
    }
    Ok(groups.concat())
}

/// The amount from its digits, with two decimal places.
fn amount(whole: &str, fraction: &str) -> Result<Decimal, PriceError> {
    if fraction.len() > 2 {
        return Err(PriceError::TooManyDecimals);
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > MAX_WHOLE_DIGITS {
        return Err(PriceError::TooLarge);
    }
    let text = format!(
        "{}.{fraction:0<2}",
        if whole.is_empty() { "0" } else { whole }
    );
    Decimal::from_str(&text).map_err(|_| PriceError::NotANumber(text))
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.currency {
            Some(currency) => write!(f, "{} {currency}", self.amount),
            None => write!(f, "{}", self.amount),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn eur(text: &str) -> Price {
        Price {
            amount: Decimal::from_str(text).unwrap(),
            currency: Some("EUR".into()),
        }
    }

    fn plain(text: &str) -> Price {
        Price {
            amount: Decimal::from_str(text).unwrap(),
            currency: None,
        }
    }

    #[test]
    fn german_english_and_plain_notations_with_a_currency_before_or_after() {
        for (text, price) in [
            ("1.299,00", plain("1299.00")),
            ("1.299,00 €", eur("1299.00")),
            ("EUR 1.299,00", eur("1299.00")),
            ("EUR1.299,00", eur("1299.00")),
            ("1299,5", plain("1299.50")),
            ("1.299,-", plain("1299.00")),
            ("1.299,--  EUR", eur("1299.00")),
            ("1,299.00", plain("1299.00")),
            ("€1,299.00", eur("1299.00")),
            ("1,299,000.5", plain("1299000.50")),
            ("1299", plain("1299.00")),
            ("329.00", plain("329.00")),
            ("0,99 eur", eur("0.99")),
            ("1.299,00 Euro", eur("1299.00")),
            ("EURO 5", eur("5.00")),
            ("1\u{a0}299,00\u{a0}€", eur("1299.00")),
            ("1\u{2009}299.00", plain("1299.00")),
            ("1 299 000", plain("1299000.00")),
            ("1.299.000", plain("1299000.00")),
            ("9999999999.99", plain("9999999999.99")),
            ("  42  ", plain("42.00")),
        ] {
            assert_eq!(parse_price(text, None), Ok(price), "{text:?}");
        }
        let usd = parse_price("USD 1299.00", None).unwrap();
        assert_eq!(usd.amount, Decimal::new(129900, 2));
        assert_eq!(usd.currency.as_deref(), Some("USD"));
        assert_eq!(
            parse_price("$5", None).unwrap().currency.as_deref(),
            Some("USD")
        );
    }

    #[test]
    fn the_amount_always_has_two_decimal_places() {
        assert_eq!(
            parse_price("1299", None).unwrap().amount.to_string(),
            "1299.00"
        );
        assert_eq!(
            parse_price("1299,5", None).unwrap().amount.to_string(),
            "1299.50"
        );
    }

    #[test]
    fn a_single_separator_before_three_digits_is_refused_unless_the_notation_is_set() {
        for text in ["1.299", "1,299", "EUR 1.299", "1,299 €"] {
            let error = parse_price(text, None).unwrap_err();
            assert!(
                matches!(error, PriceError::Ambiguous { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains("1299"), "{error}");
        }
        assert_eq!(
            parse_price("1.299", Some(Notation::German)),
            Ok(plain("1299"))
        );
        assert_eq!(
            parse_price("1,299", Some(Notation::English)),
            Ok(plain("1299"))
        );
        // Read as a decimal separator, three places are more than a price has.
        assert_eq!(
            parse_price("1,299", Some(Notation::German)),
            Err(PriceError::TooManyDecimals)
        );
        assert_eq!(
            parse_price("1.299", Some(Notation::English)),
            Err(PriceError::TooManyDecimals)
        );
        // The notation never overrides what the text itself says.
        assert_eq!(
            parse_price("1,299.00", Some(Notation::German)),
            Ok(plain("1299"))
        );
    }

    #[test]
    fn bad_prices_are_refused_with_a_reason() {
        use PriceError::*;
        for (text, error) in [
            ("", Empty),
            ("EUR", Empty),
            ("-5", Negative),
            ("−5,00 €", Negative),
            ("EUR -1.299,00", Negative),
            ("(5.00)", Negative),
            ("5-", Negative),
            ("soon", NotANumber("soon".into())),
            ("12a", NotANumber("12a".into())),
            ("5 Euros", NotANumber("5 Euros".into())),
            ("EUR 5 €", TwoCurrencies),
            ("1.2,50", Grouping),
            ("1.29.000", Grouping),
            ("1.299 000", Grouping),
            ("12345.678,00", Grouping),
            ("1.299,00,5", TwoDecimalSeparators),
            (",50", NoWholePart),
            ("1299,", NoDecimals),
            ("1,2345", TooManyDecimals),
            ("12345.678", TooManyDecimals),
            ("0,299", TooManyDecimals),
            ("1.299,001", TooManyDecimals),
            ("10000000000", TooLarge),
            ("99999999999999999999999999999999", TooLarge),
        ] {
            assert_eq!(parse_price(text, None), Err(error), "{text:?}");
        }
    }

    /// An amount the inventory can hold, with two decimal places.
    fn any_amount() -> impl Strategy<Value = Decimal> {
        (0i64..1_000_000_000_000).prop_map(|cents| Decimal::new(cents, 2))
    }

    /// The amount as people write it: thousands grouped by `thousands`, decimals after
    /// `decimal`.
    fn written(amount: Decimal, thousands: &str, decimal: char) -> String {
        let text = amount.to_string();
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
        let mut grouped = String::new();
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push_str(thousands);
            }
            grouped.push(digit);
        }
        format!("{grouped}{decimal}{fraction}")
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = parse_price(&text, None);
            let _ = parse_price(&text, Some(Notation::German));
        }

        #[test]
        fn never_panics_on_price_like_text(text in "[-−(€$ EURSD0-9.,\u{a0}]{0,16}") {
            let _ = parse_price(&text, None);
        }

        #[test]
        fn written_prices_read_back_the_same(
            amount in any_amount(),
            (thousands, decimal) in prop_oneof![
                Just((".", ',')), Just(("", ',')), Just(("\u{a0}", ',')),
                Just((",", '.')), Just(("", '.')), Just(("\u{2009}", '.')),
            ],
            currency in prop_oneof![
                Just(("", "")), Just(("", " €")), Just(("EUR ", "")), Just(("€", "")),
                Just(("", " EUR")),
            ],
        ) {
            let text = format!("{}{}{}", currency.0, written(amount, thousands, decimal), currency.1);
            let price = parse_price(&text, None).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(price.amount, amount, "{}", text);
            prop_assert_eq!(price.currency.is_some(), !(currency.0.is_empty() && currency.1.is_empty()));
        }

        #[test]
        fn an_accepted_price_is_the_number_its_digits_say(text in "[0-9.,]{1,14}") {
            // Whatever reading wins, it keeps every digit in order: nothing is rounded away.
            if let Ok(price) = parse_price(&text, None) {
                let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                let read: String = price.amount.to_string().chars().filter(char::is_ascii_digit).collect();
                let digits = digits.trim_start_matches('0');
                let read = read.trim_start_matches('0');
                prop_assert!(read.starts_with(digits), "{} read as {}", text, price.amount);
                prop_assert!(read[digits.len()..].chars().all(|c| c == '0'), "{} read as {}", text, price.amount);
            }
        }
    }
}

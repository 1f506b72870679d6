//! Decodes one page body, `{ "totalCount": n, "results": [...] }`, in one walk over it: each
//! record is sliced out of the body as raw JSON text and mapped right away, so neither the
//! page nor its records ever become a `serde_json::Value` tree, and the body can be dropped
//! as soon as the page is decoded.

use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::lenient::{accept_scalars, skip_containers, Key};
use super::mapping::MappingError;

/// Turns one record's JSON text into an item of a page.
pub(crate) type Mapper<T> = Arc<dyn Fn(&RawValue) -> Result<T, MappingError> + Send + Sync>;

/// A decoded page.
pub(crate) struct Page<T> {
    pub total: u64,
    /// How many records the page held, mapped or not; the paging checks count these.
    pub count: u64,
    /// The mapped records, or why the first unmappable one failed. Mapping goes on checking
    /// the JSON after a failure, so that a syntax error further on is what gets reported.
    pub items: Result<Vec<T>, MappingError>,
}

/// Decodes `body`; `capacity` is the number of records expected. The error is the cause for
/// a "page ... is malformed" message.
pub(crate) fn decode<T>(body: &[u8], capacity: usize, map: &Mapper<T>) -> Result<Page<T>, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let envelope = deserializer
        .deserialize_any(EnvelopeVisitor { capacity, map })
        .and_then(|envelope| deserializer.end().map(|()| envelope))
        .map_err(|error| format!("invalid JSON ({error})"))?;
    let total = envelope
        .total
        .ok_or_else(|| "no numeric `totalCount`".to_string())?;
    match envelope.results {
        Some(Results::Array { count, items }) => Ok(Page {
            total,
            count,
            items,
        }),
        Some(Results::Other) => Err("`results` is not an array".to_string()),
        None => Err("no `results`".to_string()),
    }
}

struct Envelope<T> {
    /// `totalCount` if it is a non-negative integer.
    total: Option<u64>,
    results: Option<Results<T>>,
}

enum Results<T> {
    Array {
        count: u64,
        items: Result<Vec<T>, MappingError>,
    },
    /// `results` is there but not an array.
    Other,
}

struct EnvelopeVisitor<'m, T> {
    capacity: usize,
    map: &'m Mapper<T>,
}

impl<'de, T> Visitor<'de> for EnvelopeVisitor<'_, T> {
    type Value = Envelope<T>;

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope {
            total: None,
            results: None,
        };
        // A repeated key keeps its last value, as a `Value` map would.
        while let Some(Key(key)) = map.next_key()? {
            match key.as_ref() {
                "totalCount" => envelope.total = map.next_value::<Count>()?.0,
                "results" => {
                    envelope.results = Some(map.next_value_seed(ResultsSeed {
                        capacity: self.capacity,
                        map: self.map,
                    })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Envelope {
            total: None,
            results: None,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        self.visit_unit()
    }

    accept_scalars!(Envelope {
        total: None,
        results: None
    });
}

/// `totalCount`: a JSON integer that fits `u64`, else `None`.
struct Count(Option<u64>);

impl<'de> de::Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn visit_u64<E>(self, count: u64) -> Result<Self::Value, E> {
        Ok(Count(Some(count)))
    }

    skip_containers!(Count(None));
    accept_scalars!(Count(None));
}

struct ResultsSeed<'m, T> {
    capacity: usize,
    map: &'m Mapper<T>,
}

impl<'de, T> DeserializeSeed<'de> for ResultsSeed<'_, T> {
    type Value = Results<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T> Visitor<'de> for ResultsSeed<'_, T> {
    type Value = Results<T>;

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count = 0;
        let mut items = Ok(Vec::with_capacity(self.capacity));
        // Borrowed: the record text is a slice of the body; only the mapping copies it.
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            count += 1;
            if let Ok(list) = &mut items {
                match (self.map)(raw) {
                    Ok(item) => list.push(item),
                    Err(error) => items = Err(error),
                }
            }
        }
        if let Ok(list) = &mut items {
            // A short page (the last one) gives back what `capacity` reserved for a full one.
            list.shrink_to_fit();
        }
        Ok(Results::Array { count, items })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Results::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Results::Other)
    }

    accept_scalars!(Results::Other);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Mapper<String> {
        Arc::new(|raw: &RawValue| match raw.get() {
            "{}" => Err(MappingError::MissingId("id")),
            text => Ok(text.to_string()),
        })
    }

    fn cause(body: &str) -> String {
        match decode(body.as_bytes(), 0, &ids()) {
            Err(cause) => cause,
            Ok(_) => panic!("{body} decoded"),
        }
    }

    #[test]
    fn records_keep_their_text_and_the_first_failure_wins() {
        let body = r#"{"x": [1, {"a": 2}], "totalCount": 7, "results": [ {"id": 1} , "a\"b", 3 ]}"#;
        let page = decode(body.as_bytes(), 3, &ids()).unwrap();
        assert_eq!(page.total, 7);
        assert_eq!(page.count, 3);
        assert_eq!(page.items.unwrap(), [r#"{"id": 1}"#, r#""a\"b""#, "3"]);

        let page = decode(
            br#"{"totalCount": 3, "results": [1, {}, {}, 4]}"#,
            0,
            &ids(),
        )
        .unwrap();
        assert_eq!(page.count, 4);
        assert_eq!(page.items, Err(MappingError::MissingId("id")));
    }

    #[test]
    fn envelope_errors_in_the_order_they_were_always_checked() {
        assert!(cause(r#"{"totalCount": 2, "results": [{"#).starts_with("invalid JSON ("));
        assert!(cause(r#"{"totalCount": 2, "results": [{}, ]}"#).starts_with("invalid JSON ("));
        assert!(cause(r#"{"totalCount": 0, "results": []} x"#).starts_with("invalid JSON ("));
        for body in [
            r#"{"results": []}"#,
            r#"{"totalCount": -1, "results": []}"#,
            r#"{"totalCount": 2.0, "results": []}"#,
            r#"{"totalCount": "2", "results": 5}"#,
            r#"[{"totalCount": 2, "results": []}]"#,
            "42",
            "null",
        ] {
            assert_eq!(cause(body), "no numeric `totalCount`", "{body}");
        }
        for body in [
            r#"{"totalCount": 2, "results": {"a": []}}"#,
            r#"{"totalCount": 2, "results": null}"#,
            r#"{"totalCount": 2, "results": 1}"#,
        ] {
            assert_eq!(cause(body), "`results` is not an array", "{body}");
        }
        assert_eq!(cause(r#"{"totalCount": 3}"#), "no `results`");
    }
}

//! The request keys every HTTP source's `[[source]]` table has (`timeout_secs`,
//! `max_concurrency`, `retry_*`): declared once in `RequestKeys`, which each source's config
//! takes in with `#[serde(flatten)]`, and checked and turned into `HttpSettings` in one place,
//! so that a key means the same and is refused in the same words whichever source it is set on.
//!
//! A source differs only in its defaults (`RequestDefaults`) and in whether it has a
//! `max_concurrency` key at all: a source that sends several requests at once also flattens in
//! `MaxConcurrencyKey`, one that sends one at a time does not, so that the key on such a source
//! stays an unknown-key error. The outer config keeps `deny_unknown_fields`: serde refuses the
//! keys that neither the config nor a flattened struct took ("unknown field `x`"). That works
//! only one level deep: a flattened struct must neither deny unknown fields nor flatten
//! another struct itself (serde then reads it as a map and leaves every key "unknown").

use std::time::Duration;

use serde::Deserialize;

use crate::http::{HttpSettings, RetryPolicy};

/// The request keys of a `[[source]]` table as written; `None` takes the source's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RequestKeys {
    /// Time limit for one request including its response body, in seconds.
    pub timeout_secs: Option<u64>,
    /// Tries per request (the first included) on throttling, server errors and network errors.
    pub retry_max_attempts: Option<u32>,
    /// Backoff ceiling before the first retry in milliseconds; it doubles per retry.
    pub retry_base_ms: Option<u64>,
    /// Largest backoff ceiling in milliseconds.
    pub retry_cap_ms: Option<u64>,
}

/// The `max_concurrency` key of a source that sends several requests at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct MaxConcurrencyKey {
    /// Requests in flight at once.
    pub max_concurrency: Option<usize>,
}

/// No `max_concurrency` key: the source sends one request at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OneAtATime;

/// What a source's request keys say about concurrency.
pub trait ConcurrencyKey {
    /// The configured `max_concurrency`, if the source has the key and it is set.
    fn configured(&self) -> Option<usize>;
}

impl ConcurrencyKey for MaxConcurrencyKey {
    fn configured(&self) -> Option<usize> {
        self.max_concurrency
    }
}

impl ConcurrencyKey for OneAtATime {
    fn configured(&self) -> Option<usize> {
        None
    }
}

/// One source's defaults for the request keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestDefaults {
    pub timeout_secs: u64,
    /// The default and the most requests at once the vendor tolerates; `None` for a source
    /// without a `max_concurrency` key.
    pub max_concurrency: Option<MaxConcurrency>,
    pub retry_max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
}

impl RequestDefaults {
    /// The defaults most sources use: 60 s, six tries, backoff from 1 s up to 60 s.
    pub(crate) const STANDARD: RequestDefaults = RequestDefaults {
        timeout_secs: 60,
        max_concurrency: None,
        retry_max_attempts: 6,
        retry_base_ms: 1000,
        retry_cap_ms: 60_000,
    };
}

impl RequestKeys {
    /// The keys (and the source's `concurrency` key) with `defaults` filled in where the
    /// table sets none.
    pub(crate) fn resolve(
        &self,
        concurrency: &impl ConcurrencyKey,
        defaults: &RequestDefaults,
    ) -> RequestSettings {
        let configured = concurrency.configured();
        RequestSettings {
            timeout_secs: self.timeout_secs.unwrap_or(defaults.timeout_secs),
            max_concurrency: defaults.max_concurrency.map(|concurrency| MaxConcurrency {
                configured: configured.unwrap_or(concurrency.configured),
                max: concurrency.max,
            }),
            retry_max_attempts: self
                .retry_max_attempts
                .unwrap_or(defaults.retry_max_attempts),
            retry_base_ms: self.retry_base_ms.unwrap_or(defaults.retry_base_ms),
            retry_cap_ms: self.retry_cap_ms.unwrap_or(defaults.retry_cap_ms),
        }
    }
}

/// The request keys of one source with its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestSettings {
    pub timeout_secs: u64,
    /// `None` for a source without a `max_concurrency` key: it sends one request at a time.
    pub max_concurrency: Option<MaxConcurrency>,
    pub retry_max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
}

/// A source's `max_concurrency` (or its default), with the most requests at once its vendor
/// tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaxConcurrency {
    pub configured: usize,
    pub max: usize,
}

/// Why the request keys of a source are unusable. Each text names the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestKeyError {
    #[error("`max_concurrency` must be between 1 and {max}, got {configured}")]
    MaxConcurrency { configured: usize, max: usize },
    #[error("`timeout_secs` must be at least 1")]
    Timeout,
    #[error("`retry_max_attempts` must be at least 1")]
    RetryAttempts,
    // Checked before the cap, whose text would otherwise blame the cap for a zero base.
    #[error("`retry_base_ms` must be at least 1")]
    RetryBase,
    #[error("`retry_base_ms` must not be above `retry_cap_ms` ({base} > {cap})")]
    RetryBackoff { base: u64, cap: u64 },
}

impl RequestSettings {
    pub(crate) fn validate(&self) -> Result<(), RequestKeyError> {
        if let Some(MaxConcurrency { configured, max }) = self.max_concurrency {
            if !(1..=max).contains(&configured) {
                return Err(RequestKeyError::MaxConcurrency { configured, max });
            }
        }
        if self.timeout_secs == 0 {
            return Err(RequestKeyError::Timeout);
        }
        if self.retry_max_attempts == 0 {
            return Err(RequestKeyError::RetryAttempts);
        }
        if self.retry_base_ms == 0 {
            return Err(RequestKeyError::RetryBase);
        }
        if self.retry_base_ms > self.retry_cap_ms {
            return Err(RequestKeyError::RetryBackoff {
                base: self.retry_base_ms,
                cap: self.retry_cap_ms,
            });
        }
        Ok(())
    }

    /// The HTTP client settings these keys describe.
    pub(crate) fn http_settings(&self) -> HttpSettings {
        let timeout = Duration::from_secs(self.timeout_secs);
        HttpSettings {
            timeout,
            // A server that does not even accept the connection within 10 s is down; no need
            // to wait the full request timeout for that.
            connect_timeout: timeout.min(Duration::from_secs(10)),
            max_concurrency: self
                .max_concurrency
                .map_or(1, |concurrency| concurrency.configured),
            retry: RetryPolicy {
                max_attempts: self.retry_max_attempts,
                base: Duration::from_millis(self.retry_base_ms),
                cap: Duration::from_millis(self.retry_cap_ms),
                ..RetryPolicy::default()
            },
            ..HttpSettings::default()
        }
    }
}

/// The one test helper for the request keys of every HTTP source's config.
#[cfg(test)]
pub(crate) mod testing {
    /// The request-key mistakes every HTTP source refuses, each with the key its error names.
    pub(crate) fn bad_keys() -> Vec<(serde_json::Value, &'static str)> {
        use serde_json::json;
        vec![
            (json!({ "timeout_secs": 0 }), "`timeout_secs`"),
            (json!({ "retry_max_attempts": 0 }), "`retry_max_attempts`"),
            (json!({ "retry_base_ms": 0 }), "`retry_base_ms`"),
            (
                json!({ "retry_base_ms": 10, "retry_cap_ms": 5 }),
                "`retry_base_ms`",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source config as the connectors declare theirs: own keys, the request keys flattened
    /// in, unknown keys refused.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Source {
        base_url: String,
        #[serde(flatten)]
        request: RequestKeys,
        #[serde(flatten)]
        concurrency: MaxConcurrencyKey,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OneAtATimeSource {
        #[serde(flatten)]
        request: RequestKeys,
    }

    const CONCURRENT: RequestDefaults = RequestDefaults {
        max_concurrency: Some(MaxConcurrency {
            configured: 2,
            max: 5,
        }),
        timeout_secs: 120,
        ..RequestDefaults::STANDARD
    };

    #[test]
    fn flattened_keys_are_read_defaulted_and_unknown_keys_still_refused() {
        let table: toml::Table = toml::from_str(
            "base_url = \"https://x.example\"\ntimeout_secs = 7\nmax_concurrency = 3\n",
        )
        .unwrap();
        let source: Source = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(source.base_url, "https://x.example");
        let settings = source.request.resolve(&source.concurrency, &CONCURRENT);
        assert_eq!(settings.timeout_secs, 7);
        assert_eq!(settings.retry_max_attempts, 6);
        assert_eq!(
            settings.max_concurrency,
            Some(MaxConcurrency {
                configured: 3,
                max: 5
            })
        );
        let defaulted: Source =
            serde_json::from_value(serde_json::json!({ "base_url": "x" })).unwrap();
        let settings = defaulted
            .request
            .resolve(&defaulted.concurrency, &CONCURRENT);
        assert_eq!(settings.timeout_secs, 120);
        assert_eq!(settings.max_concurrency.map(|c| c.configured), Some(2));

        let typo = serde_json::from_value::<Source>(
            serde_json::json!({ "base_url": "x", "timeout_sec": 5 }),
        )
        .unwrap_err();
        assert_eq!(typo.to_string(), "unknown field `timeout_sec`");
        // A source that sends one request at a time has no `max_concurrency` key.
        let one_at_a_time =
            serde_json::from_value::<OneAtATimeSource>(serde_json::json!({ "max_concurrency": 2 }))
                .unwrap_err();
        assert_eq!(one_at_a_time.to_string(), "unknown field `max_concurrency`");
        let settings = serde_json::from_value::<OneAtATimeSource>(serde_json::json!({}))
            .unwrap()
            .request
            .resolve(&OneAtATime, &RequestDefaults::STANDARD);
        assert_eq!(settings.http_settings().max_concurrency, 1);
    }

    const KEYS: RequestSettings = RequestSettings {
        timeout_secs: 60,
        max_concurrency: Some(MaxConcurrency {
            configured: 2,
            max: 5,
        }),
        retry_max_attempts: 6,
        retry_base_ms: 1000,
        retry_cap_ms: 60_000,
    };

    #[test]
    fn each_bad_key_is_named_in_its_error() {
        assert_eq!(KEYS.validate(), Ok(()));
        let concurrency = |configured| Some(MaxConcurrency { configured, max: 5 });
        for (keys, expected) in [
            (
                RequestSettings {
                    max_concurrency: concurrency(0),
                    ..KEYS
                },
                "`max_concurrency` must be between 1 and 5, got 0",
            ),
            (
                RequestSettings {
                    max_concurrency: concurrency(6),
                    ..KEYS
                },
                "`max_concurrency` must be between 1 and 5, got 6",
            ),
            (
                RequestSettings {
                    timeout_secs: 0,
                    ..KEYS
                },
                "`timeout_secs` must be at least 1",
            ),
            (
                RequestSettings {
                    retry_max_attempts: 0,
                    ..KEYS
                },
                "`retry_max_attempts` must be at least 1",
            ),
            (
                RequestSettings {
                    retry_base_ms: 0,
                    ..KEYS
                },
                "`retry_base_ms` must be at least 1",
            ),
            (
                RequestSettings {
                    retry_base_ms: 10,
                    retry_cap_ms: 5,
                    ..KEYS
                },
                "`retry_base_ms` must not be above `retry_cap_ms` (10 > 5)",
            ),
        ] {
            let error = keys.validate().unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
        let at_the_limits = RequestSettings {
            max_concurrency: concurrency(5),
            retry_base_ms: 1,
            retry_cap_ms: 1,
            ..KEYS
        };
        assert_eq!(at_the_limits.validate(), Ok(()));
    }

    #[test]
    fn a_source_without_max_concurrency_is_not_checked_for_it_and_sends_one_at_a_time() {
        let keys = RequestSettings {
            max_concurrency: None,
            ..KEYS
        };
        assert_eq!(keys.validate(), Ok(()));
        assert_eq!(keys.http_settings().max_concurrency, 1);
    }

    #[test]
    fn http_settings_carry_the_keys() {
        let settings = KEYS.http_settings();
        assert_eq!(settings.timeout, Duration::from_secs(60));
        assert_eq!(settings.connect_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_concurrency, 2);
        assert_eq!(
            settings.retry,
            RetryPolicy {
                max_attempts: 6,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
                ..RetryPolicy::default()
            }
        );
        assert_eq!(settings.user_agent, HttpSettings::default().user_agent);
        let quick = RequestSettings {
            timeout_secs: 3,
            ..KEYS
        };
        assert_eq!(
            quick.http_settings().connect_timeout,
            Duration::from_secs(3)
        );
    }
}

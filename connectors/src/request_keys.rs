//! The request keys every HTTP source's `[[source]]` table has (`timeout_secs`,
//! `max_concurrency`, `retry_*`), checked and turned into `HttpSettings` in one place, so that
//! a key means the same and is refused in the same words whichever source it is set on.
//!
//! The keys themselves stay declared in each config struct, with that source's defaults:
//! the structs use `deny_unknown_fields` to catch typos, and serde cannot combine that with
//! `flatten`.

use std::time::Duration;

use crate::http::{HttpSettings, RetryPolicy};

/// The request keys of one source, copied out of its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestKeys {
    pub timeout_secs: u64,
    /// `None` for a source without a `max_concurrency` key: it sends one request at a time.
    pub max_concurrency: Option<MaxConcurrency>,
    pub retry_max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
}

/// A source's `max_concurrency` key, with the most requests at once its vendor tolerates.
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

impl RequestKeys {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: RequestKeys = RequestKeys {
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
                RequestKeys {
                    max_concurrency: concurrency(0),
                    ..KEYS
                },
                "`max_concurrency` must be between 1 and 5, got 0",
            ),
            (
                RequestKeys {
                    max_concurrency: concurrency(6),
                    ..KEYS
                },
                "`max_concurrency` must be between 1 and 5, got 6",
            ),
            (
                RequestKeys {
                    timeout_secs: 0,
                    ..KEYS
                },
                "`timeout_secs` must be at least 1",
            ),
            (
                RequestKeys {
                    retry_max_attempts: 0,
                    ..KEYS
                },
                "`retry_max_attempts` must be at least 1",
            ),
            (
                RequestKeys {
                    retry_base_ms: 0,
                    ..KEYS
                },
                "`retry_base_ms` must be at least 1",
            ),
            (
                RequestKeys {
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
        let at_the_limits = RequestKeys {
            max_concurrency: concurrency(5),
            retry_base_ms: 1,
            retry_cap_ms: 1,
            ..KEYS
        };
        assert_eq!(at_the_limits.validate(), Ok(()));
    }

    #[test]
    fn a_source_without_max_concurrency_is_not_checked_for_it_and_sends_one_at_a_time() {
        let keys = RequestKeys {
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
        let quick = RequestKeys {
            timeout_secs: 3,
            ..KEYS
        };
        assert_eq!(
            quick.http_settings().connect_timeout,
            Duration::from_secs(3)
        );
    }
}

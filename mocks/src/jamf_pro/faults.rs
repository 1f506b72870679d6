//! What can go wrong on the fake Jamf Pro server, switchable at start (CLI `--fault`) and at
//! run time (the [`Faults`] handle), so tests can stage a failure exactly where they need it.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::generator::DeviceKind;
use crate::plumbing::{lock, take_burst, Burst};

/// A fault tied to one page of one inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFault {
    pub inventory: DeviceKind,
    /// The `page` query value (0-based) that triggers it, whatever the page size.
    pub page: u32,
    /// How many requests of that page it spoils; `None`: every one.
    pub times: Option<u32>,
}

impl PageFault {
    /// Page `page` of the mobile devices, every time it is asked for.
    pub fn mobile(page: u32) -> PageFault {
        PageFault {
            inventory: DeviceKind::Mobile,
            page,
            times: None,
        }
    }

    /// Page `page` of the computers, every time it is asked for.
    pub fn computers(page: u32) -> PageFault {
        PageFault {
            inventory: DeviceKind::Computer,
            page,
            times: None,
        }
    }

    /// Only the first `times` requests of the page are spoilt; a retry after that succeeds.
    pub fn times(self, times: u32) -> PageFault {
        PageFault {
            times: Some(times),
            ..self
        }
    }
}

/// A page that silently leaves out its last `missing` records (`totalCount` stays right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortPage {
    pub at: PageFault,
    pub missing: u32,
}

/// The full fault configuration. `Default` is a healthy server at epoch 0.
///
/// "Data requests" are all GETs the mock serves (inventories, sites, buildings, version); token
/// requests are never refused, so a client can always get back on its feet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The epoch of the fleet that is served (see [`crate::Fleet::snapshot`]).
    pub epoch: u32,
    /// The next this many data requests answer 429.
    pub rate_limit_next: u32,
    /// `Retry-After` of those 429 answers, in seconds.
    pub retry_after_secs: u64,
    /// The next this many data requests answer a 5xx.
    pub server_errors_next: u32,
    /// The status of those; `None` cycles 500, 502, 503.
    pub server_error_status: Option<u16>,
    /// Added before every answer, token requests included.
    pub delay: Duration,
    /// Lifetime of tokens issued from now on; `None`: Jamf's 599 s for OAuth tokens and 30 min
    /// for user tokens.
    pub token_ttl: Option<Duration>,
    /// A token answers at most this many data requests, then 401.
    pub token_max_requests: Option<u32>,
    /// This page's body is cut off mid-JSON (status 200).
    pub malformed_page: Option<PageFault>,
    /// This page has fewer records than the page size and `totalCount` promise.
    pub short_page: Option<ShortPage>,
    /// Newest `computers-inventory` version served (1 to 4); newer paths answer 404 as an older
    /// Jamf Pro would.
    pub computers_api_version: u8,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            epoch: 0,
            rate_limit_next: 0,
            retry_after_secs: 1,
            server_errors_next: 0,
            server_error_status: None,
            delay: Duration::ZERO,
            token_ttl: None,
            token_max_requests: None,
            malformed_page: None,
            short_page: None,
            computers_api_version: 4,
        }
    }
}

/// One fault as the binary's `--fault` flag spells it. [`FaultPlan::apply`] switches it on.
///
/// Spellings (`K` a 0-based page, prefix `computers:` for the computers inventory):
/// `429=N[:SECS]`, `5xx=N`, `500=N` / `502=N` / `503=N`, `slow=MS`, `token-ttl=SECS`,
/// `token-requests=N`, `malformed-page=[computers:]K`, `short-page=[computers:]K[:MISSING]`,
/// `computers-api=V` and `no-v4` (same as `computers-api=3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RateLimit { count: u32, retry_after_secs: u64 },
    ServerErrors { count: u32, status: Option<u16> },
    Delay(Duration),
    TokenTtl(Duration),
    TokenMaxRequests(u32),
    MalformedPage(PageFault),
    ShortPage(ShortPage),
    ComputersApiVersion(u8),
}

/// Why a `--fault` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultParseError(String);

impl fmt::Display for FaultParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FaultParseError {}

fn number<T: FromStr>(spec: &str, value: &str) -> Result<T, FaultParseError> {
    value
        .parse()
        .map_err(|_| FaultParseError(format!("{spec:?}: {value:?} is not a number")))
}

/// `[computers:]K[:N]` into the page fault (every time) and the optional trailing number.
fn page_target(spec: &str, value: &str) -> Result<(PageFault, Option<u32>), FaultParseError> {
    let (inventory, rest) = match value.split_once(':') {
        Some(("computers", rest)) => (DeviceKind::Computer, rest),
        Some(("mobile", rest)) => (DeviceKind::Mobile, rest),
        _ => (DeviceKind::Mobile, value),
    };
    let (page, extra) = match rest.split_once(':') {
        Some((page, extra)) => (page, Some(number(spec, extra)?)),
        None => (rest, None),
    };
    let fault = PageFault {
        inventory,
        page: number(spec, page)?,
        times: None,
    };
    Ok((fault, extra))
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(spec: &str) -> Result<Fault, FaultParseError> {
        if spec == "no-v4" {
            return Ok(Fault::ComputersApiVersion(3));
        }
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| FaultParseError(format!("{spec:?}: expected NAME=VALUE or no-v4")))?;
        let fault = match name {
            "429" | "rate-limit" => {
                let (count, secs) = value.split_once(':').unwrap_or((value, "1"));
                Fault::RateLimit {
                    count: number(spec, count)?,
                    retry_after_secs: number(spec, secs)?,
                }
            }
            "5xx" => Fault::ServerErrors {
                count: number(spec, value)?,
                status: None,
            },
            "500" | "502" | "503" | "504" => Fault::ServerErrors {
                count: number(spec, value)?,
                status: Some(number(spec, name)?),
            },
            "slow" => Fault::Delay(Duration::from_millis(number(spec, value)?)),
            "token-ttl" => Fault::TokenTtl(Duration::from_secs(number(spec, value)?)),
            "token-requests" => Fault::TokenMaxRequests(number(spec, value)?),
            "malformed-page" => match page_target(spec, value)? {
                (at, None) => Fault::MalformedPage(at),
                (_, Some(_)) => {
                    return Err(FaultParseError(format!(
                        "{spec:?}: expected malformed-page=[computers:]K"
                    )))
                }
            },
            "short-page" => {
                let (at, missing) = page_target(spec, value)?;
                Fault::ShortPage(ShortPage {
                    at,
                    missing: missing.unwrap_or(1),
                })
            }
            "computers-api" => match number(spec, value)? {
                version @ 1..=4 => Fault::ComputersApiVersion(version),
                _ => return Err(FaultParseError(format!("{spec:?}: versions are 1 to 4"))),
            },
            _ => return Err(FaultParseError(format!("{spec:?}: unknown fault {name:?}"))),
        };
        Ok(fault)
    }
}

impl FaultPlan {
    /// Switches `fault` on, replacing an earlier fault of the same sort.
    pub fn apply(&mut self, fault: Fault) {
        match fault {
            Fault::RateLimit {
                count,
                retry_after_secs,
            } => {
                self.rate_limit_next = count;
                self.retry_after_secs = retry_after_secs;
            }
            Fault::ServerErrors { count, status } => {
                self.server_errors_next = count;
                self.server_error_status = status;
            }
            Fault::Delay(delay) => self.delay = delay,
            Fault::TokenTtl(ttl) => self.token_ttl = Some(ttl),
            Fault::TokenMaxRequests(max) => self.token_max_requests = Some(max),
            Fault::MalformedPage(at) => self.malformed_page = Some(at),
            Fault::ShortPage(short) => self.short_page = Some(short),
            Fault::ComputersApiVersion(version) => self.computers_api_version = version,
        }
    }
}

/// A fault the server answers with instead of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    RateLimited { retry_after_secs: u64 },
    ServerError(u16),
}

/// What happens to one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageOutcome {
    Intact,
    Malformed,
    Short(u32),
}

#[derive(Debug, Default)]
struct State {
    plan: FaultPlan,
    /// Tokens issued before the last [`Faults::expire_tokens`] carry an older generation.
    token_generation: u64,
    /// Position in the 500/502/503 cycle.
    server_errors_served: u64,
}

/// Shared, cloneable handle to the running server's faults. Every change applies to the next
/// request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    pub(crate) fn new(plan: FaultPlan) -> Faults {
        Faults {
            state: Arc::new(Mutex::new(State {
                plan,
                ..State::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A copy of the current plan.
    pub fn plan(&self) -> FaultPlan {
        self.lock().plan.clone()
    }

    /// Changes the plan in place.
    pub fn update(&self, change: impl FnOnce(&mut FaultPlan)) {
        change(&mut self.lock().plan);
    }

    /// Switches one fault on (see [`Fault`]).
    pub fn apply(&self, fault: Fault) {
        self.update(|plan| plan.apply(fault));
    }

    /// Back to a healthy server; the epoch stays.
    pub fn clear(&self) {
        self.update(|plan| {
            *plan = FaultPlan {
                epoch: plan.epoch,
                ..FaultPlan::default()
            }
        });
    }

    /// Serves the fleet as it is in `epoch` from the next request on.
    pub fn set_epoch(&self, epoch: u32) {
        self.update(|plan| plan.epoch = epoch);
    }

    pub fn epoch(&self) -> u32 {
        self.lock().plan.epoch
    }

    /// The next `count` data requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, count: u32, retry_after_secs: u64) {
        self.apply(Fault::RateLimit {
            count,
            retry_after_secs,
        });
    }

    /// The next `count` data requests answer `status`, or 500, 502, 503 in turn if `None`.
    pub fn server_errors_next(&self, count: u32, status: Option<u16>) {
        self.apply(Fault::ServerErrors { count, status });
    }

    /// Every answer waits `delay` first.
    pub fn set_delay(&self, delay: Duration) {
        self.update(|plan| plan.delay = delay);
    }

    /// Tokens issued from now on live `ttl` (`None`: Jamf's defaults).
    pub fn set_token_ttl(&self, ttl: Option<Duration>) {
        self.update(|plan| plan.token_ttl = ttl);
    }

    /// Each token answers at most `max` data requests (`None`: no limit); applies to tokens
    /// already issued too.
    pub fn set_token_max_requests(&self, max: Option<u32>) {
        self.update(|plan| plan.token_max_requests = max);
    }

    /// Every token issued so far stops working now.
    pub fn expire_tokens(&self) {
        self.lock().token_generation += 1;
    }

    pub fn set_malformed_page(&self, at: Option<PageFault>) {
        self.update(|plan| plan.malformed_page = at);
    }

    pub fn set_short_page(&self, short: Option<ShortPage>) {
        self.update(|plan| plan.short_page = short);
    }

    /// Newest `computers-inventory` version served; `3` makes v4 answer 404.
    pub fn set_computers_api_version(&self, version: u8) {
        self.update(|plan| plan.computers_api_version = version);
    }

    pub(crate) fn delay(&self) -> Duration {
        self.lock().plan.delay
    }

    pub(crate) fn token_generation(&self) -> u64 {
        self.lock().token_generation
    }

    /// Consumes one pending 429 or 5xx, if any; 429s come first.
    pub(crate) fn take_refusal(&self) -> Option<Refusal> {
        let mut state = self.lock();
        let plan = &mut state.plan;
        match take_burst(&mut plan.rate_limit_next, &mut plan.server_errors_next)? {
            Burst::RateLimit => Some(Refusal::RateLimited {
                retry_after_secs: plan.retry_after_secs,
            }),
            Burst::ServerErrors => {
                let status = plan
                    .server_error_status
                    .unwrap_or_else(|| [500, 502, 503][(state.server_errors_served % 3) as usize]);
                state.server_errors_served += 1;
                Some(Refusal::ServerError(status))
            }
        }
    }

    /// Decides the fate of one page request and uses up one count of a limited page fault.
    pub(crate) fn take_page_outcome(&self, inventory: DeviceKind, page: usize) -> PageOutcome {
        let mut state = self.lock();
        let plan = &mut state.plan;
        if consume(&mut plan.malformed_page, inventory, page) {
            return PageOutcome::Malformed;
        }
        if let Some(short) = plan.short_page {
            let mut at = Some(short.at);
            if consume(&mut at, inventory, page) {
                plan.short_page = at.map(|at| ShortPage { at, ..short });
                return PageOutcome::Short(short.missing);
            }
        }
        PageOutcome::Intact
    }
}

/// True if `fault` hits this page; counts down a limited fault and removes it when used up.
fn consume(fault: &mut Option<PageFault>, inventory: DeviceKind, page: usize) -> bool {
    let Some(current) = *fault else {
        return false;
    };
    if current.inventory != inventory || current.page as usize != page {
        return false;
    }
    *fault = match current.times {
        None => Some(current),
        Some(0 | 1) => None,
        Some(n) => Some(PageFault {
            times: Some(n - 1),
            ..current
        }),
    };
    !matches!(current.times, Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        let parse = |s: &str| s.parse::<Fault>();
        assert_eq!(
            parse("429=3:2"),
            Ok(Fault::RateLimit {
                count: 3,
                retry_after_secs: 2
            })
        );
        assert_eq!(
            parse("503=2"),
            Ok(Fault::ServerErrors {
                count: 2,
                status: Some(503)
            })
        );
        assert_eq!(
            parse("short-page=computers:2:5"),
            Ok(Fault::ShortPage(ShortPage {
                at: PageFault::computers(2),
                missing: 5
            }))
        );
        assert_eq!(
            parse("malformed-page=1"),
            Ok(Fault::MalformedPage(PageFault::mobile(1)))
        );
        assert_eq!(parse("no-v4"), Ok(Fault::ComputersApiVersion(3)));
        assert!(parse("computers-api=5").is_err());
        assert!(parse("bogus=1").is_err());
    }

    #[test]
    fn limited_page_faults_wear_off() {
        let faults = Faults::new(FaultPlan::default());
        faults.set_malformed_page(Some(PageFault::mobile(2).times(1)));
        assert_eq!(
            faults.take_page_outcome(DeviceKind::Computer, 2),
            PageOutcome::Intact
        );
        assert_eq!(
            faults.take_page_outcome(DeviceKind::Mobile, 2),
            PageOutcome::Malformed
        );
        assert_eq!(
            faults.take_page_outcome(DeviceKind::Mobile, 2),
            PageOutcome::Intact
        );
    }
}

//! The deletion guard: a source that suddenly reports far fewer devices is more likely broken
//! than emptied, so such a run marks nothing missing until a person approves it.

use serde::{Deserialize, Serialize};

/// Limits on how many of a source's devices one run may mark missing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeletionGuard {
    /// Share of the source's live devices, 0.0 to 1.0.
    pub max_share: f64,
    /// Absolute count; the larger of the two limits applies.
    pub min_count: u64,
}

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard {
            max_share: 0.10,
            min_count: 50,
        }
    }
}

impl DeletionGuard {
    /// The most devices a run may mark missing when the source had `live` devices.
    pub fn limit(&self, live: u64) -> u64 {
        let by_share = (self.max_share * live as f64).floor() as u64;
        by_share.max(self.min_count)
    }

    /// `Some(reason)` when marking `missing` of `live` devices would exceed the limit.
    pub fn check(&self, missing: u64, live: u64) -> Option<String> {
        self.check_marking(missing, live, "devices missing")
    }

    /// `check` for any kind of marking: `what` completes "run would mark 60 of 100 ...",
    /// e.g. `persons as left`.
    pub fn check_marking(&self, missing: u64, live: u64, what: &str) -> Option<String> {
        let limit = self.limit(live);
        (missing > limit).then(|| {
            let share = if live == 0 {
                100.0
            } else {
                missing as f64 * 100.0 / live as f64
            };
            format!(
                "run would mark {missing} of {live} {what} ({share:.1} %), above the limit \
                 of {limit} ({:.0} % or {}, whichever is larger); nothing was marked",
                self.max_share * 100.0,
                self.min_count
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_larger_of_share_and_count_applies() {
        let guard = DeletionGuard::default();
        assert_eq!(guard.limit(100), 50);
        assert_eq!(guard.limit(5_000), 500);
        assert!(guard.check(50, 100).is_none());
        assert!(guard.check(51, 100).is_some());
        assert!(guard.check(500, 5_000).is_none());
        let reason = guard.check(501, 5_000).unwrap();
        assert!(reason.contains("501 of 5000"), "{reason}");
    }
}

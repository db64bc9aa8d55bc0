//! When to add a mount target. Pure functions of the count, the threshold and how many
//! targets exist, so the rule "nothing happens unless the count exceeds the threshold"
//! (property 2) is checked over all inputs, not a few.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// One mount target per `threshold` files: desired = ceil(count / threshold),
    /// bounded by the minimum and maximum. Grows in step with the data and stops.
    PerTarget,
    /// The original design: one more target on every run while count > threshold, up to
    /// the maximum. Reaches the maximum soon after the threshold is first crossed.
    Seed,
}

impl FromStr for Policy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "per-target" => Ok(Policy::PerTarget),
            "seed" => Ok(Policy::Seed),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::PerTarget => "per-target",
            Policy::Seed => "seed",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub threshold: u64,
    pub min: usize,
    /// The configured maximum, already capped at the number of candidate zones.
    pub max: usize,
}

impl Policy {
    /// How far counting must go for [`Policy::desired`] to be exact: past this many files
    /// the decision cannot change, so the walk may stop (early stop).
    pub fn count_limit(self, bounds: Bounds, existing: usize) -> u64 {
        let needed = match self {
            Policy::PerTarget if existing < bounds.max => {
                // Another target is wanted once count > threshold * existing.
                bounds.threshold.saturating_mul(existing.max(1) as u64)
            }
            // Seed: only "above the threshold?" matters; at the maximum nothing can be
            // created, and the threshold is still reported.
            _ => bounds.threshold,
        };
        needed.saturating_add(1)
    }

    /// How many mount targets this policy wants for `count` files, given `existing`.
    pub fn desired(self, bounds: Bounds, count: u64, existing: usize) -> usize {
        // Property 2: at or below the threshold the policy never asks for more than
        // exists, whatever the minimum says (a missing initial target is the deployer's
        // to restore, not the scaler's).
        if count <= bounds.threshold {
            return existing;
        }
        let wanted = match self {
            Policy::PerTarget => {
                let per = count.div_ceil(bounds.threshold);
                usize::try_from(per).unwrap_or(usize::MAX)
            }
            Policy::Seed => existing.saturating_add(1),
        };
        wanted.max(bounds.min).min(bounds.max).max(existing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bounds(threshold: u64, min: usize, max: usize) -> Bounds {
        Bounds {
            threshold,
            min,
            max,
        }
    }

    #[test]
    fn per_target_grows_with_the_data() {
        let b = bounds(100, 2, 4);
        assert_eq!(Policy::PerTarget.desired(b, 100, 2), 2);
        assert_eq!(Policy::PerTarget.desired(b, 201, 2), 3);
        assert_eq!(Policy::PerTarget.desired(b, 300, 3), 3);
        assert_eq!(Policy::PerTarget.desired(b, 301, 3), 4);
        assert_eq!(Policy::PerTarget.desired(b, 10_000, 3), 4);
        // Above the threshold the minimum applies.
        assert_eq!(Policy::PerTarget.desired(b, 101, 1), 2);
    }

    #[test]
    fn seed_adds_one_per_run_while_over() {
        let b = bounds(100, 2, 4);
        assert_eq!(Policy::Seed.desired(b, 100, 2), 2);
        assert_eq!(Policy::Seed.desired(b, 101, 2), 3);
        assert_eq!(Policy::Seed.desired(b, 101, 3), 4);
        assert_eq!(Policy::Seed.desired(b, 101, 4), 4);
    }

    #[test]
    fn count_limit_stops_where_the_decision_is_made() {
        let b = bounds(100, 2, 4);
        assert_eq!(Policy::PerTarget.count_limit(b, 2), 201);
        assert_eq!(Policy::PerTarget.count_limit(b, 4), 101);
        assert_eq!(Policy::Seed.count_limit(b, 2), 101);
        assert_eq!(
            Policy::PerTarget.count_limit(bounds(u64::MAX, 1, 3), 2),
            u64::MAX
        );
    }

    fn any_policy() -> impl Strategy<Value = Policy> {
        prop_oneof![Just(Policy::PerTarget), Just(Policy::Seed)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Property 2: more targets are wanted only when the count exceeds the threshold,
        /// never beyond the maximum, and never fewer than exist.
        #[test]
        fn scales_only_above_the_threshold(
            policy in any_policy(),
            threshold in 1u64..1_000_000,
            count in 0u64..10_000_000,
            min in 1usize..4,
            extra in 0usize..4,
            existing in 0usize..8,
        ) {
            let b = bounds(threshold, min, min + extra);
            let desired = policy.desired(b, count, existing);
            if desired > existing {
                prop_assert!(count > threshold);
                prop_assert!(desired <= b.max);
            }
            prop_assert!(desired >= existing);
            if count <= threshold {
                prop_assert_eq!(desired, existing);
            }
        }

        /// Early stop is safe: the decision made from a count cut at the limit is the
        /// decision made from the exact count.
        #[test]
        fn the_count_limit_never_changes_the_decision(
            policy in any_policy(),
            threshold in 1u64..1_000,
            count in 0u64..10_000,
            min in 1usize..4,
            extra in 0usize..4,
            existing in 0usize..8,
        ) {
            let b = bounds(threshold, min, min + extra);
            let limit = policy.count_limit(b, existing);
            let seen = count.min(limit);
            let grow = |c| policy.desired(b, c, existing) > existing;
            prop_assert_eq!(grow(seen), grow(count));
            prop_assert_eq!(seen > threshold, count > threshold);
        }
    }
}

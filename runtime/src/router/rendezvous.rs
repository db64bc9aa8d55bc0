//! Which mount target serves a path: rendezvous (highest-random-weight) hashing.
//!
//! Each target scores each path with a keyed hash of (target key, path); the highest
//! score serves it, the next highest takes over when it is down. Compared with the seed's
//! `hash(path) % n`:
//! - the hash is SipHash-1-3 with a fixed key, so every process, task and release agrees
//!   on where a path lives (Python's `hash()` is salted per process);
//! - adding an (n+1)-th target moves only the paths it now wins, about 1/(n+1) of them,
//!   where `% n` moves about n/(n+1);
//! - losing a target moves only the paths it served, each to its own second choice, so
//!   the survivors share the load evenly instead of one neighbour taking all of it.
//!
//! Targets are keyed by mount-target id (or address when no id is known), never by
//! position, so a list published in another order routes the same way.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// Changing these moves every path to a new target: never change them.
const KEY: (u64, u64) = (0x6566_732d_726f_7574, 0x6572_2d72_656e_6476);

/// The score of `target` for `path`: higher wins.
pub fn score(target: &str, path: &str) -> u64 {
    let mut h = SipHasher13::new_with_keys(KEY.0, KEY.1);
    h.write(target.as_bytes());
    // Neither part can contain NUL (paths with NUL are refused), so the pair is
    // unambiguous: ("ab", "c") and ("a", "bc") hash differently.
    h.write_u8(0);
    h.write(path.as_bytes());
    h.finish()
}

/// `items` in the order they should serve `path`: best first. Ties (a 2^-64 event) are
/// broken by key so the order is still a total, deterministic one.
pub fn rank<'a, T>(items: &'a [T], key: impl Fn(&T) -> &str, path: &str) -> Vec<&'a T> {
    let mut scored: Vec<(u64, &str, &T)> = items
        .iter()
        .map(|item| (score(key(item), path), key(item), item))
        .collect();
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, _, item)| item).collect()
}

/// `items` in serving order for `path` when each has a weight: weighted rendezvous
/// hashing (score `-w / ln(u)`, `u` the hash in (0, 1)), so an item's share of paths is
/// its weight over the total, and a change of the set still moves only the paths the
/// added or removed item wins or served. Equal weights give [`rank`]'s order (up to
/// ties in the top 53 bits, a 2^-53 event).
pub fn rank_weighted<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> &str,
    weight: impl Fn(&T) -> f64,
    path: &str,
) -> Vec<&'a T> {
    let mut scored: Vec<(f64, &str, &T)> = items
        .iter()
        .map(|item| {
            // The top 53 bits (what an f64 holds exactly) as a midpoint in (0, 1): never
            // 0 (ln 0) nor 1 (division by zero).
            let u = ((score(key(item), path) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            (-weight(item) / u.ln(), key(item), item)
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, _, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng};

    fn owner<'a>(targets: &'a [String], path: &str) -> &'a str {
        rank(targets, String::as_str, path)[0].as_str()
    }

    fn targets(n: usize, salt: u64) -> Vec<String> {
        (0..n)
            .map(|i| format!("fsmt-{:016x}", salt.wrapping_add(i as u64 * 0x9e37_79b9)))
            .collect()
    }

    /// Upper 10^-6 quantiles of the chi-square distribution for 1..=7 degrees of freedom:
    /// an even hash fails one case in a million, a biased one fails every time.
    const CHI2_CRITICAL: [f64; 7] = [23.93, 27.63, 30.66, 33.38, 35.89, 38.26, 40.52];

    /// One to four names of random hex.
    fn random_path(rng: &mut TestRng) -> String {
        let (a, b) = (rng.next_u64(), rng.next_u64());
        match a % 4 {
            0 => format!("{b:x}"),
            1 => format!("{:x}/{b:x}", a >> 40),
            2 => format!("{:x}/{:x}/{b:x}", a >> 44, (a >> 8) & 0xfff),
            _ => format!(
                "d{:x}/{:x}/{:x}/{b:x}.dat",
                a >> 52,
                (a >> 20) & 0xff,
                (a >> 8) & 0xfff
            ),
        }
    }

    #[test]
    fn the_hash_is_fixed_across_processes_and_releases() {
        // Pinned values: if this fails, every deployed router would disagree with the
        // new one about where files live.
        assert_eq!(
            score("fsmt-0123456789abcdef", "a/b.txt"),
            0x3067_3807_7bd8_4dcc
        );
        assert_eq!(score("10.0.1.100", ""), 0xb5f9_cf4a_63fa_9cc7);
    }

    #[test]
    fn separator_keeps_key_and_path_apart() {
        assert_ne!(score("ab", "c"), score("a", "bc"));
    }

    proptest! {
        #![proptest_config(Config::with_cases(256))]

        /// Property 5: the same path always reaches the same target, whatever the order
        /// the targets are listed in.
        #[test]
        fn property_5_same_path_same_target(
            n in 1usize..=8, salt in any::<u64>(), path in "[a-z0-9/._-]{1,64}", rotate in 0usize..8,
        ) {
            let t = targets(n, salt);
            let mut shuffled = t.clone();
            shuffled.rotate_left(rotate % n);
            let first = owner(&t, &path).to_string();
            prop_assert_eq!(owner(&t, &path), first.as_str());
            prop_assert_eq!(owner(&shuffled, &path), first.as_str());
        }

        /// Adding an (n+1)-th target moves only paths to the new target, about 1/(n+1)
        /// of them; losing one moves only the paths it served.
        #[test]
        fn remap_bounds(n in 1usize..=7, salt in any::<u64>(), seed in any::<u64>()) {
            let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed.to_le_bytes().repeat(4));
            let before = targets(n, salt);
            let mut after = before.clone();
            after.push(format!("fsmt-new{salt:016x}"));
            let paths: Vec<String> = (0..4000).map(|_| random_path(&mut rng)).collect();

            let mut moved = 0usize;
            for p in &paths {
                let (old, new) = (owner(&before, p), owner(&after, p));
                if old != new {
                    prop_assert_eq!(new, after[n].as_str(), "a path moved between old targets");
                    moved += 1;
                }
            }
            let expected = paths.len() as f64 / (n + 1) as f64;
            // 6 standard deviations of a binomial(4000, 1/(n+1)).
            let sd = (paths.len() as f64 * (1.0 / (n + 1) as f64) * (n as f64 / (n + 1) as f64)).sqrt();
            prop_assert!((moved as f64 - expected).abs() <= 6.0 * sd, "moved {moved}, expected ~{expected:.0}");

            // Removing target `gone` moves exactly its paths.
            let gone = seed as usize % after.len();
            let mut fewer = after.clone();
            fewer.remove(gone);
            if !fewer.is_empty() {
                for p in &paths {
                    let (old, new) = (owner(&after, p), owner(&fewer, p));
                    prop_assert!(old == new || old == after[gone], "a path of a surviving target moved");
                }
            }
        }
    }

    /// SplitMix64: a good enough stream of random bits at a few instructions each,
    /// which keeps 25.6 million paths affordable in an unoptimised test build.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Property 6: load is even. 256 cases (32 per target count, 1 to 8), each a
    /// chi-square test over 100,000 random paths against the uniform distribution.
    #[test]
    fn property_6_load_is_even() {
        use std::fmt::Write;
        let cases = std::thread::scope(|scope| {
            let workers: Vec<_> = (1..=8usize)
                .map(|n| {
                    scope.spawn(move || {
                        let mut path = String::with_capacity(64);
                        for case in 0..32u64 {
                            let mut rng = SplitMix((n as u64) << 32 | case);
                            let t = targets(n, rng.next());
                            let mut counts = vec![0u64; n];
                            for _ in 0..100_000 {
                                let (a, b) = (rng.next(), rng.next());
                                path.clear();
                                let _ = match a % 3 {
                                    0 => write!(path, "{b:x}"),
                                    1 => write!(path, "{:x}/{b:x}", a >> 40),
                                    _ => write!(
                                        path,
                                        "d{:x}/{:x}/{b:x}.dat",
                                        a >> 52,
                                        (a >> 8) & 0xfff
                                    ),
                                };
                                let best = (0..n)
                                    .max_by_key(|&i| (score(&t[i], &path), std::cmp::Reverse(i)));
                                counts[best.unwrap_or(0)] += 1;
                            }
                            if n == 1 {
                                assert_eq!(counts, [100_000]);
                                continue;
                            }
                            let expected = 100_000.0 / n as f64;
                            let chi2: f64 = counts
                                .iter()
                                .map(|&c| (c as f64 - expected).powi(2) / expected)
                                .sum();
                            assert!(
                                chi2 < CHI2_CRITICAL[n - 2],
                                "{n} targets, case {case}: chi-square {chi2:.1} over {counts:?}"
                            );
                        }
                        32
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .sum::<usize>()
        });
        assert_eq!(cases, 256);
    }
}

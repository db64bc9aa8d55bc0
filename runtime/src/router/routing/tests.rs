use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::router::pool::{Target, TargetSpec};

fn targets(zones: &[&str], routing: &Routing) -> Vec<Arc<Target>> {
    zones
        .iter()
        .enumerate()
        .map(|(i, z)| {
            let spec = TargetSpec {
                key: format!("fsmt-{i:017x}"),
                address: format!("10.0.{i}.10"),
                availability_zone: Some(z.to_string()),
                mount_target_id: Some(format!("fsmt-{i:017x}")),
            };
            Arc::new(Target::new(spec, i, routing))
        })
        .collect()
}

fn routing(mode: RoutingMode, zone: Option<&str>, share: f64) -> Routing {
    Routing {
        mode,
        zone: zone.map(str::to_string),
        local_share: share,
    }
}

fn paths(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("d{}/f{i}.dat", i % 97))
}

fn owner(r: &Routing, t: &[Arc<Target>], path: &str) -> String {
    r.rank(t, path)[0].spec.availability_zone.clone().unwrap()
}

#[test]
fn crossing_is_known_only_when_both_zones_are() {
    let r = routing(RoutingMode::Spread, Some("a"), 0.5);
    assert_eq!(r.crosses(Some("a")), Some(false));
    assert_eq!(r.crosses(Some("b")), Some(true));
    assert_eq!(r.crosses(None), None);
    assert_eq!(Routing::default().crosses(Some("a")), None);
}

#[test]
fn local_first_keeps_everything_in_zone_and_falls_back_by_hash() {
    let r = routing(RoutingMode::LocalFirst, Some("b"), 0.5);
    let t = targets(&["a", "b", "c"], &r);
    let spread = Routing::default();
    for path in paths(2000) {
        let ranked = r.rank(&t, &path);
        assert_eq!(ranked[0].spec.availability_zone.as_deref(), Some("b"));
        // The fallback order is the spread order of the others: the same stable hash.
        let others: Vec<&str> = spread
            .rank(&t, &path)
            .into_iter()
            .filter(|x| x.spec.availability_zone.as_deref() != Some("b"))
            .map(|x| x.spec.key.as_str())
            .collect();
        let fallback: Vec<&str> = ranked[1..].iter().map(|x| x.spec.key.as_str()).collect();
        assert_eq!(fallback, others);
    }
    assert_eq!(
        t.iter().map(|x| x.cross_az).collect::<Vec<_>>(),
        [Some(true), Some(false), Some(true)]
    );
}

#[test]
fn without_a_known_or_served_zone_every_mode_spreads() {
    let spread = Routing::default();
    for r in [
        routing(RoutingMode::LocalFirst, None, 0.5),
        routing(RoutingMode::Weighted, Some("z"), 0.9),
    ] {
        let t = targets(&["a", "b", "c"], &r);
        for path in paths(500) {
            assert_eq!(owner(&r, &t, &path), owner(&spread, &t, &path));
        }
    }
}

#[test]
fn weighted_gives_the_local_target_its_share() {
    let r = routing(RoutingMode::Weighted, Some("a"), 0.75);
    let t = targets(&["a", "b", "c"], &r);
    let n = 40_000;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for path in paths(n) {
        *counts.entry(owner(&r, &t, &path)).or_default() += 1;
    }
    let share = |z: &str| counts[z] as f64 / n as f64;
    // Binomial sd at n = 40k is ~0.002: 0.01 is five of them.
    assert!((share("a") - 0.75).abs() < 0.01, "{counts:?}");
    assert!((share("b") - 0.125).abs() < 0.01, "{counts:?}");
    assert!((share("c") - 0.125).abs() < 0.01, "{counts:?}");
}

#[test]
fn weighted_with_equal_weights_is_spread() {
    // One local, two remote, a third of the paths: the local weight is exactly 1.
    let r = routing(RoutingMode::Weighted, Some("a"), 1.0 / 3.0);
    let t = targets(&["a", "b", "c"], &r);
    let spread = Routing::default();
    for path in paths(2000) {
        assert_eq!(owner(&r, &t, &path), owner(&spread, &t, &path));
    }
}

#[test]
fn weighted_moves_only_the_paths_of_a_target_that_leaves() {
    let r = routing(RoutingMode::Weighted, Some("a"), 0.6);
    let all = targets(&["a", "b", "c", "d"], &r);
    // Same weights on both sides: the share is computed per remote, so dropping one
    // remote changes the local weight; compare with the same weight function.
    let without_d: Vec<Arc<Target>> = all[..3].to_vec();
    let w_all = 0.6 * 3.0 / 0.4;
    let weight = |t: &Arc<Target>| {
        if t.spec.availability_zone.as_deref() == Some("a") {
            w_all
        } else {
            1.0
        }
    };
    for path in paths(5000) {
        let before = rendezvous::rank_weighted(&all, super::key, weight, &path)[0]
            .spec
            .key
            .clone();
        let after = rendezvous::rank_weighted(&without_d, super::key, weight, &path)[0]
            .spec
            .key
            .clone();
        if before != all[3].spec.key {
            assert_eq!(before, after, "{path} moved though its target stayed");
        }
    }
}

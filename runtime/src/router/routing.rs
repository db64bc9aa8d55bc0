//! Which targets may serve a path, in which order: `--routing`.
//!
//! - `spread`: every path over every target by rendezvous hashing (the original design).
//!   Most bytes cross zones: with n targets in n zones, (n-1)/n of them.
//! - `local-first`: the target in the router's own zone serves everything; the others,
//!   ranked by the same hash, only while it is down. No cross-zone traffic in normal
//!   running, and a zone's failure stays in that zone. The load still spreads over the
//!   mount targets because ECS spreads the tasks over the zones.
//! - `weighted`: the same-zone target gets `--local-share` percent of the paths, the
//!   others the rest in equal parts (weighted rendezvous hashing).
//!
//! Each keeps the stable-hash properties within its candidates: a path always goes to
//! the same target while the set is the same, and a change moves only the paths of the
//! target that came or went. Without a known zone, or with no target in it, every mode
//! routes as `spread`.

use super::pool::Target;
use super::rendezvous;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingMode {
    Spread,
    LocalFirst,
    Weighted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub mode: RoutingMode,
    /// The router's own availability zone, when known.
    pub zone: Option<String>,
    /// `weighted`: the same-zone target's share of paths, in (0, 1).
    pub local_share: f64,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            mode: RoutingMode::Spread,
            zone: None,
            local_share: 0.5,
        }
    }
}

impl Routing {
    /// Whether traffic to a target in `zone` crosses zones: `None` when either zone is
    /// unknown.
    pub fn crosses(&self, zone: Option<&str>) -> Option<bool> {
        Some(self.zone.as_deref()? != zone?)
    }

    fn is_local(&self, t: &Target) -> bool {
        self.crosses(t.spec.availability_zone.as_deref()) == Some(false)
    }

    /// Every target in serving order for `path`, best first (health is the caller's).
    pub fn rank<'a>(
        &self,
        targets: &'a [std::sync::Arc<Target>],
        path: &str,
    ) -> Vec<&'a std::sync::Arc<Target>> {
        let locals = targets.iter().filter(|t| self.is_local(t)).count();
        let remotes = targets.len() - locals;
        if locals == 0 || remotes == 0 {
            return rendezvous::rank(targets, key, path);
        }
        match self.mode {
            RoutingMode::Spread => rendezvous::rank(targets, key, path),
            RoutingMode::LocalFirst => {
                let mut ranked = rendezvous::rank(targets, key, path);
                // Stable: locals keep their hash order, then the others keep theirs.
                ranked.sort_by_key(|t| !self.is_local(t));
                ranked
            }
            RoutingMode::Weighted => {
                // Local weight w with each remote 1: locals' share = L*w / (L*w + R).
                let share = self.local_share.clamp(0.01, 0.99);
                let w = share * remotes as f64 / ((1.0 - share) * locals as f64);
                rendezvous::rank_weighted(
                    targets,
                    key,
                    |t| if self.is_local(t) { w } else { 1.0 },
                    path,
                )
            }
        }
    }
}

fn key(t: &std::sync::Arc<Target>) -> &str {
    t.spec.key.as_str()
}

#[cfg(test)]
mod tests;

//! The run's deadline: a moment safely before Lambda would kill the function, so that
//! running out of time is a reported error with a result, not a silent kill.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

/// Time kept back from the function timeout: enough to publish the result and the
/// metrics, and for an in-flight AWS call's own timeout to fire first.
pub fn margin(budget: Duration) -> Duration {
    (budget / 10).clamp(Duration::from_secs(2), Duration::from_secs(15))
}

impl Deadline {
    pub fn at(at: Instant) -> Self {
        Deadline { at }
    }

    pub fn after(budget: Duration) -> Self {
        Deadline::at(Instant::now() + budget)
    }

    /// From Lambda's deadline (milliseconds since the epoch), less the margin.
    pub fn from_lambda(deadline_ms: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let budget = Duration::from_millis(deadline_ms).saturating_sub(now);
        Deadline::after(budget.saturating_sub(margin(budget)))
    }

    pub fn instant(&self) -> Instant {
        self.at
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// This deadline moved earlier by `reserve` (never before now).
    pub fn less(&self, reserve: Duration) -> Deadline {
        let now = Instant::now();
        Deadline::at(self.at.checked_sub(reserve).unwrap_or(now).max(now))
    }

    /// Runs `fut` until it finishes or the deadline passes (`None`).
    pub async fn bound<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.at.into(), fut).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_tenth_within_bounds() {
        assert_eq!(margin(Duration::from_secs(300)), Duration::from_secs(15));
        assert_eq!(margin(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(margin(Duration::from_secs(3)), Duration::from_secs(2));
    }

    #[test]
    fn lambda_deadline_keeps_the_margin() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let d = Deadline::from_lambda(now_ms + 60_000);
        let left = d.remaining();
        assert!(
            left <= Duration::from_secs(54) && left > Duration::from_secs(50),
            "{left:?}"
        );
        // A deadline already past gives no time at all rather than wrapping.
        assert_eq!(
            Deadline::from_lambda(now_ms - 1000).remaining(),
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn bound_gives_up_at_the_deadline() {
        let d = Deadline::after(Duration::from_millis(20));
        assert_eq!(d.bound(std::future::pending::<()>()).await, None);
        assert_eq!(
            Deadline::after(Duration::from_secs(5))
                .bound(async { 7 })
                .await,
            Some(7)
        );
    }
}

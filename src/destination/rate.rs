//! `sdk.rate.perSecond` / `sdk.rate.burst`: a token bucket shared by all writers.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `None` when unlimited. A burst of 0 means the rate rounded up, as in the Go SDK.
    pub(crate) fn new(per_second: f64, burst: i64) -> Option<Self> {
        if per_second <= 0.0 {
            return None;
        }
        let burst = if burst > 0 {
            burst as f64
        } else {
            per_second.ceil()
        };
        Some(RateLimiter {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        })
    }

    /// The most records one call may carry.
    pub(crate) fn burst(&self) -> usize {
        self.burst as usize
    }

    /// Waits until `n` records (at most the burst) may be written.
    pub(crate) async fn acquire(&self, n: usize) {
        let wanted = (n as f64).min(self.burst);
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            let (tokens, last) = *state;
            let refilled =
                (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
            if refilled >= wanted {
                *state = (refilled - wanted, now);
                return;
            }
            *state = (refilled, now);
            let wait = Duration::from_secs_f64((wanted - refilled) / self.per_second);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_when_zero() {
        assert!(RateLimiter::new(0.0, 10).is_none());
        assert_eq!(RateLimiter::new(2.5, 0).unwrap().burst(), 3);
        assert_eq!(RateLimiter::new(100.0, 10).unwrap().burst(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_records_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 5).unwrap();
        let start = Instant::now();
        limiter.acquire(5).await; // the initial burst is free
        assert!(start.elapsed() < Duration::from_millis(1));
        limiter.acquire(5).await; // then 5 more take half a second at 10/s
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(499) && elapsed < Duration::from_millis(600),
            "{elapsed:?}"
        );
        for _ in 0..10 {
            limiter.acquire(1).await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1499), "{elapsed:?}");
    }
}

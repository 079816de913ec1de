//! The loop guard of `watch --exec`: at most `max` runs of CMD in any window of `per`. Two
//! agents whose loops answer each other would otherwise run (and bill) forever; when the cap
//! is reached, watch stops before the next run instead of pausing, because a pause would only
//! slow the ping-pong down, and a stopped loop is what an operator notices.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Runs allowed per window when `--max-runs` is not given.
pub(super) const DEFAULT_MAX_RUNS: usize = 20;
/// The window when `--per` is not given: 10 minutes.
pub(super) const DEFAULT_PER_SECS: u64 = 600;

/// A sliding-window counter of CMD runs.
pub(super) struct LoopGuard {
    max: usize,
    per: Duration,
    runs: VecDeque<Instant>,
}

impl LoopGuard {
    /// A guard allowing `max` runs per `per`; `max` 0 allows any number.
    pub(super) fn new(max: usize, per: Duration) -> LoopGuard {
        LoopGuard {
            max,
            per,
            runs: VecDeque::new(),
        }
    }

    /// Records a run starting at `now`, or returns false (recording nothing) if the window
    /// already holds `max` runs.
    pub(super) fn admit(&mut self, now: Instant) -> bool {
        if self.max == 0 {
            return true;
        }
        while self
            .runs
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.per)
        {
            self.runs.pop_front();
        }
        if self.runs.len() >= self.max {
            return false;
        }
        self.runs.push_back(now);
        true
    }

    /// `N times in S s`, for messages.
    pub(super) fn describe(&self) -> String {
        let times = super::format::counted(self.max as u64, "time");
        format!("{times} in {} s", self.per.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut g = LoopGuard::new(2, 10 * s);
        assert!(g.admit(t0));
        assert!(g.admit(t0 + s));
        assert!(!g.admit(t0 + 9 * s));
        assert!(g.admit(t0 + 10 * s), "the first run left the window");
        assert!(!g.admit(t0 + 10 * s));
        let mut off = LoopGuard::new(0, s);
        assert!((0..1000).all(|_| off.admit(t0)));
    }
}

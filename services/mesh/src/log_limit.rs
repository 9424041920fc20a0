//! Warnings a peer can trigger at will (a refused handshake, a malformed line) go through a
//! [`LogLimiter`]: a client must not be able to flood the log, and through it the disk. Lines
//! past the rate are counted, and the next line admitted says how many were held back.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub struct LogLimiter {
    limiter: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// Admits `per_second` lines a second on average, and as many at once.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        LogLimiter {
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now: `Some(n)` with the number of lines held back since
    /// the last one admitted (log it as a field), `None` when this one is held back.
    pub fn admit(&self) -> Option<u64> {
        if self.limiter.check().is_ok() {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for LogLimiter {
    /// Ten lines a second: enough to see what is happening, too few to fill a disk.
    fn default() -> Self {
        LogLimiter::per_second(NonZeroU32::new(10).expect("ten is not zero"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_rate_are_counted_and_reported_with_the_next_one() {
        let limiter = LogLimiter::per_second(NonZeroU32::new(2).unwrap());
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), Some(0));
        let held: usize = (0..100).filter(|_| limiter.admit().is_none()).count();
        assert!(held >= 98, "{held} held back of 100");
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), held as u64);
    }
}

//! [`MissLimiter`]: a token bucket per source address for `/config` requests that match no
//! server (or that a server's identity check refuses). A node asking for its own config never
//! misses, so only guessing costs tokens; once an address has none left, its requests are
//! answered without reading the database until the bucket refills.
//!
//! IPv6 sources count per /64 (one customer network), so an attacker cannot get a fresh
//! bucket per address. Memory is bounded: at most [`MissLimiter::MAX_SOURCES`] buckets are
//! kept; beyond it, full buckets (which behave like absent ones) are dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-source limits on `/config` misses.
#[derive(Debug)]
pub struct MissLimiter {
    burst: f64,
    refill_every: Duration,
    buckets: Mutex<HashMap<u128, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for MissLimiter {
    /// 20 misses at once, then one every 5 seconds.
    fn default() -> MissLimiter {
        MissLimiter::new(20, Duration::from_secs(5))
    }
}

impl MissLimiter {
    /// How many sources are tracked at most.
    pub const MAX_SOURCES: usize = 16_384;

    /// A limiter that allows `burst` misses at once, then one per `refill_every`.
    pub fn new(burst: u32, refill_every: Duration) -> MissLimiter {
        MissLimiter {
            burst: f64::from(burst.max(1)),
            refill_every: refill_every.max(Duration::from_millis(1)),
            buckets: Mutex::default(),
        }
    }

    /// The bucket key: an IPv4 address, or an IPv6 address's /64.
    fn key(source: IpAddr) -> u128 {
        match source {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => (u128::from(v6) & !u128::from(u64::MAX)) | 1,
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed / self.refill_every.as_secs_f64()).min(self.burst)
    }

    /// Whether `source` may still miss: it has a token left at `now`. Takes nothing.
    pub fn allows(&self, source: IpAddr, now: Instant) -> bool {
        let buckets = self.lock();
        buckets
            .get(&Self::key(source))
            .is_none_or(|bucket| self.refilled(*bucket, now) >= 1.0)
    }

    /// Takes a token from `source`'s bucket: it just missed.
    pub fn record_miss(&self, source: IpAddr, now: Instant) {
        let mut buckets = self.lock();
        let key = Self::key(source);
        if !buckets.contains_key(&key) && buckets.len() >= Self::MAX_SOURCES {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if buckets.len() >= Self::MAX_SOURCES {
                buckets.clear();
            }
        }
        let tokens = buckets
            .get(&key)
            .map_or(self.burst, |bucket| self.refilled(*bucket, now));
        buckets.insert(
            key,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                at: now,
            },
        );
    }

    /// How many sources are tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Bucket>> {
        // Only hints are kept; a panic elsewhere leaves them usable.
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_runs_out_of_misses_and_gets_them_back() {
        let limiter = MissLimiter::new(3, Duration::from_secs(10));
        let source: IpAddr = "198.51.100.7".parse().unwrap();
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.allows(source, start));
            limiter.record_miss(source, start);
        }
        assert!(!limiter.allows(source, start));
        assert!(limiter.allows(other, start));
        assert!(!limiter.allows(source, start + Duration::from_secs(9)));
        assert!(limiter.allows(source, start + Duration::from_secs(10)));
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let limiter = MissLimiter::new(1, Duration::from_secs(10));
        let now = Instant::now();
        limiter.record_miss("2001:db8:1:2::1".parse().unwrap(), now);
        assert!(!limiter.allows("2001:db8:1:2:ffff::9".parse().unwrap(), now));
        assert!(limiter.allows("2001:db8:1:3::1".parse().unwrap(), now));
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = MissLimiter::new(2, Duration::from_secs(10));
        let now = Instant::now();
        for n in 0..(MissLimiter::MAX_SOURCES as u32 + 1_000) {
            limiter.record_miss(IpAddr::V4(n.into()), now);
        }
        assert!(limiter.tracked() <= MissLimiter::MAX_SOURCES);
    }
}

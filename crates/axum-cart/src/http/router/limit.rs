//! The rate limits of discount code attempts: one per visitor (its cart) and one per client
//! address, as [`governor`] quotas kept in memory.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{request::Parts, HeaderMap, HeaderValue, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::http::respond::Problem;
use crate::CartId;

/// A keyed limiter that reports what is left after each attempt.
type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Keys remembered before the ones whose quota is full again are dropped…
const TRACKED: usize = 10_000;
/// …which is looked at once every this many attempts (a scan of the keys, under the
/// limiter's lock, is not something every request should pay for).
const PRUNE_EVERY: u64 = 1_024;

/// The window the limits are counted over, in seconds.
const WINDOW_SECS: u64 = 60;

/// The discount attempt limits of one router (shared by its clones).
#[derive(Clone)]
pub(super) struct DiscountLimits {
    per_visitor: u32,
    per_address: u32,
    visitors: Option<Arc<Keyed<CartId>>>,
    addresses: Option<Arc<Keyed<IpAddr>>>,
    /// Attempts counted, for pruning.
    attempts: Arc<AtomicU64>,
}

impl Default for DiscountLimits {
    fn default() -> Self {
        DiscountLimits::new(
            super::CartRouter::DEFAULT_DISCOUNT_ATTEMPTS,
            super::CartRouter::DEFAULT_DISCOUNT_ATTEMPTS_PER_ADDRESS,
        )
    }
}

impl fmt::Debug for DiscountLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscountLimits")
            .field("per_visitor", &self.per_visitor)
            .field("per_address", &self.per_address)
            .finish()
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<Arc<Keyed<K>>> {
    let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
    Some(Arc::new(
        RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
    ))
}

/// One attempt checked against a limiter: what is left, or how long to wait.
fn attempt<K: std::hash::Hash + Eq + Clone>(
    limiter: &Keyed<K>,
    key: &K,
    attempts: &AtomicU64,
) -> Result<StateSnapshot, Duration> {
    if attempts.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == 0 && limiter.len() > TRACKED {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    limiter
        .check_key(key)
        .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
}

/// What a visitor's attempt leaves: `remaining` attempts, all back in `reset_secs`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Left {
    remaining: u32,
    reset_secs: u64,
}

impl DiscountLimits {
    /// Limits of `per_visitor` and `per_address` attempts a minute; 0 is no limit.
    pub(super) fn new(per_visitor: u32, per_address: u32) -> Self {
        DiscountLimits {
            per_visitor,
            per_address,
            visitors: limiter(per_visitor),
            addresses: limiter(per_address),
            attempts: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Counts an attempt of this visitor (no cart yet: no visitor limit) from this address
    /// (unknown: no address limit). `Ok` with what the visitor has left, or the 429.
    pub(super) fn attempt(
        &self,
        visitor: Option<CartId>,
        address: Option<IpAddr>,
    ) -> Result<Option<Left>, (Problem, Option<Left>)> {
        let left = match (&self.visitors, visitor) {
            (Some(visitors), Some(visitor)) => match attempt(visitors, &visitor, &self.attempts) {
                Ok(state) => Some(Left {
                    remaining: state.remaining_burst_capacity(),
                    reset_secs: self.reset_secs(state.remaining_burst_capacity()),
                }),
                Err(wait) => {
                    let left = Left {
                        remaining: 0,
                        reset_secs: whole_secs(wait),
                    };
                    return Err((too_many(wait), Some(left)));
                }
            },
            _ => None,
        };
        if let (Some(addresses), Some(address)) = (&self.addresses, address.map(network)) {
            if let Err(wait) = attempt(addresses, &address, &self.attempts) {
                tracing::debug!(%address, "discount code attempt refused: too many from this address");
                return Err((too_many(wait), left));
            }
        }
        Ok(left)
    }

    /// Seconds until a visitor with `remaining` attempts has all of them back.
    fn reset_secs(&self, remaining: u32) -> u64 {
        let used = u64::from(self.per_visitor.saturating_sub(remaining));
        let per = u64::from(self.per_visitor.max(1));
        (used.saturating_mul(WINDOW_SECS)).div_ceil(per)
    }

    /// The `RateLimit-Policy` and `RateLimit` headers of an answer to the visitor.
    pub(super) fn headers(&self, left: Option<Left>, headers: &mut HeaderMap) {
        let Some(left) = left else { return };
        let policy = format!("\"visitor\";q={};w={WINDOW_SECS}", self.per_visitor);
        let state = format!("\"visitor\";r={};t={}", left.remaining, left.reset_secs);
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// The key of a client address: an IPv4 address, or the /64 network of an IPv6 one (one
/// host commonly has a whole /64 to pick addresses from).
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
    }
}

/// Whole seconds, rounded up, at least 1.
fn whole_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    let secs = if wait.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

/// The 429 of an attempt over a limit.
fn too_many(wait: Duration) -> Problem {
    let secs = whole_secs(wait);
    Problem {
        retry_after: Some(secs),
        ..Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("Too many discount code attempts. Try again in {secs} seconds."),
        )
    }
}

/// The client's address, from [`ConnectInfo`] when the server provides it.
pub(super) struct ClientAddress(pub(super) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitor_gets_its_quota_then_waits() {
        let limits = DiscountLimits::new(3, 0);
        let cart = CartId::from_db(7);
        for remaining in [2, 1, 0] {
            let left = limits.attempt(Some(cart), None).unwrap().unwrap();
            assert_eq!(left.remaining, remaining);
        }
        let (problem, left) = limits.attempt(Some(cart), None).unwrap_err();
        assert_eq!(problem.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(problem.retry_after.is_some_and(|s| (1..=20).contains(&s)));
        assert_eq!(left.map(|l| l.remaining), Some(0));
        // Another visitor, and a visitor without a cart, are not affected.
        assert!(limits.attempt(Some(CartId::from_db(8)), None).is_ok());
        assert!(limits.attempt(None, None).unwrap().is_none());
    }

    #[test]
    fn an_address_is_limited_across_visitors() {
        let limits = DiscountLimits::new(0, 2);
        let address = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(limits.attempt(Some(CartId::from_db(1)), address).is_ok());
        assert!(limits.attempt(Some(CartId::from_db(2)), address).is_ok());
        assert!(limits.attempt(None, address).is_err());
        assert!(limits
            .attempt(None, Some(IpAddr::from([10, 0, 0, 2])))
            .is_ok());
        let off = DiscountLimits::new(0, 0);
        for _ in 0..100 {
            assert!(off.attempt(Some(CartId::from_db(1)), address).is_ok());
        }
    }

    #[test]
    fn an_ipv6_host_is_one_address_per_64() {
        let limits = DiscountLimits::new(0, 2);
        let host = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        assert!(limits.attempt(None, host(1)).is_ok());
        assert!(limits.attempt(None, host(2)).is_ok());
        assert!(limits.attempt(None, host(3)).is_err(), "same /64");
        let other = Some(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]));
        assert!(limits.attempt(None, other).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(network(mapped), IpAddr::from([192, 0, 2, 1]));
    }

    #[test]
    fn headers_follow_the_draft() {
        let limits = DiscountLimits::new(10, 0);
        let mut headers = HeaderMap::new();
        let left = limits.attempt(Some(CartId::from_db(1)), None).unwrap();
        limits.headers(left, &mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"visitor\";q=10;w=60");
        assert_eq!(headers["ratelimit"], "\"visitor\";r=9;t=6");
    }
}

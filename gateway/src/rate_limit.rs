//! Per-user and per-IP rate limits: a token bucket per caller and class of request
//! (governor's GCRA), checked before the handler runs. Over the limit, the caller gets
//! `429 {"error":{"code":"rate_limited"}}` with the `Retry-After` its bucket needs.
//!
//! Why here and not only in NGINX: the proxy sees addresses, the engine sees users. One
//! user's script pressing Buy Now 50 times a second is stopped by its own bucket, while the
//! thousands of shoppers behind the same carrier NAT keep buying.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::app::ApiContext;
use crate::auth::{bearer_token, caller_from_token};
use crate::error::ApiError;
use crate::settings::{RateLimit, RateLimitSettings};

/// How often buckets that are full again (their caller went quiet) are dropped. Memory is
/// bounded by the callers of the last minute, not by everyone who ever called.
const EVICT_EVERY: Duration = Duration::from_secs(60);

/// What a request is, for its rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    BuyNow,
    Checkout,
    Writes,
    Reads,
    Search,
    WebsocketConnects,
}

impl Class {
    const ALL: [Class; 6] = [
        Class::BuyNow,
        Class::Checkout,
        Class::Writes,
        Class::Reads,
        Class::Search,
        Class::WebsocketConnects,
    ];

    /// The class of a routed request, or `None` for what is never limited. `route` is the
    /// router's template (`/api/v1/orders/{id}`), absent for requests no route took.
    pub fn of(method: &Method, route: Option<&str>) -> Option<Class> {
        let Some(route) = route else {
            // A scan for routes that do not exist pays like a read.
            return Some(Class::Reads);
        };
        match route {
            "/healthz" | "/readyz" | "/metrics" | "/api/v1/payments/webhook" => None,
            "/api/v1/buy-now" => Some(Class::BuyNow),
            "/api/v1/orders" if method == Method::POST => Some(Class::Checkout),
            "/api/v1/search" => Some(Class::Search),
            _ if route.starts_with("/ws/") => Some(Class::WebsocketConnects),
            _ if method == Method::GET || method == Method::HEAD => Some(Class::Reads),
            _ => Some(Class::Writes),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl RateLimitSettings {
    /// Each class with its configured bucket.
    pub fn classes(&self) -> [(Class, RateLimit); 6] {
        Class::ALL.map(|class| {
            let limit = match class {
                Class::BuyNow => self.buy_now,
                Class::Checkout => self.checkout,
                Class::Writes => self.writes,
                Class::Reads => self.reads,
                Class::Search => self.search,
                Class::WebsocketConnects => self.websocket_connects,
            };
            (class, limit)
        })
    }
}

/// Whose bucket a request draws from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Bucket {
    User(u64),
    Address(IpAddr),
}

/// The buckets of every class, and who may speak for a client's address.
pub struct RateLimiter {
    classes: [DefaultKeyedRateLimiter<Bucket>; 6],
    trusted_proxies: Vec<ipnet::IpNet>,
    clock: DefaultClock,
}

impl RateLimiter {
    /// The limiter, and the task that evicts idle buckets (it ends with the limiter).
    pub fn start(settings: &RateLimitSettings) -> Arc<Self> {
        let classes = settings.classes().map(|(_, limit)| {
            // `Settings::check` refused zeros.
            let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
            let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
            governor::RateLimiter::dashmap(Quota::per_second(per_second).allow_burst(burst))
        });
        let limiter = Arc::new(Self {
            classes,
            trusted_proxies: settings.trusted_proxies.clone(),
            clock: DefaultClock::default(),
        });
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EVICT_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                limiter.evict_idle();
            }
        });
        limiter
    }

    /// Drops the buckets that are full again: their callers would start fresh anyway.
    fn evict_idle(&self) {
        for limiter in &self.classes {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Buckets held now, over every class (tests watch eviction with it).
    pub fn buckets(&self) -> usize {
        self.classes.iter().map(|limiter| limiter.len()).sum()
    }

    /// Takes a token from the caller's bucket of `class`, or says how long until one is
    /// there.
    fn take(&self, class: Class, bucket: &Bucket) -> Result<(), Duration> {
        self.classes[class.index()]
            .check_key(bucket)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case
    /// the nearest address of `X-Forwarded-For` that is not one of our proxies.
    fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|hop| !self.is_trusted(*hop))
            .unwrap_or(peer)
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.trusted_proxies
            .iter()
            .any(|proxy| proxy.contains(&address))
    }
}

/// `::ffff:127.0.0.1` is 127.0.0.1: a dual-stack listener reports IPv4 peers that way.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Classifies the request, finds its caller, takes a token from its bucket, or gives the
/// 429 to answer. A caller it authenticated is remembered on the request for the handler
/// (`auth::remember`). (Called by
/// `envelope.rs` on the public listener, when `[rate_limits]` is on.)
pub async fn admit(
    limiter: &RateLimiter,
    ctx: &ApiContext,
    request: &mut Request,
) -> Result<(), Response> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let Some(class) = Class::of(request.method(), route) else {
        return Ok(());
    };
    let caller = match bearer_token(request.headers()) {
        Some(token) => caller_from_token(ctx, token).await.ok(),
        None => None,
    };
    let bucket = match caller {
        Some(caller) => {
            crate::auth::remember(request.extensions_mut(), caller);
            Bucket::User(caller.user_id.0)
        }
        None => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
            Bucket::Address(canonical(
                limiter.client_address(canonical(peer), request.headers()),
            ))
        }
    };
    limiter
        .take(class, &bucket)
        .map_err(|wait| ApiError::RateLimited { wait }.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> RateLimiter {
        RateLimiter {
            classes: RateLimitSettings::default()
                .classes()
                .map(|_| governor::RateLimiter::dashmap(Quota::per_second(NonZeroU32::MIN))),
            trusted_proxies: trusted.iter().map(|net| net.parse().unwrap()).collect(),
            clock: DefaultClock::default(),
        }
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn routes_fall_into_their_classes() {
        let of = |method: Method, route: &str| Class::of(&method, Some(route));
        assert_eq!(of(Method::POST, "/api/v1/buy-now"), Some(Class::BuyNow));
        assert_eq!(of(Method::POST, "/api/v1/orders"), Some(Class::Checkout));
        assert_eq!(of(Method::GET, "/api/v1/orders/{id}"), Some(Class::Reads));
        assert_eq!(
            of(Method::POST, "/api/v1/orders/{id}/cancel"),
            Some(Class::Writes)
        );
        assert_eq!(of(Method::GET, "/api/v1/search"), Some(Class::Search));
        assert_eq!(of(Method::GET, "/ws/stock"), Some(Class::WebsocketConnects));
        assert_eq!(
            of(Method::GET, "/ws/orders/{id}"),
            Some(Class::WebsocketConnects)
        );
        assert_eq!(of(Method::POST, "/api/v1/payments/webhook"), None);
        assert_eq!(of(Method::GET, "/healthz"), None);
        assert_eq!(of(Method::GET, "/metrics"), None);
        assert_eq!(Class::of(&Method::GET, None), Some(Class::Reads));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let limiter = limiter(&["10.0.0.0/8", "127.0.0.1/32"]);
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        // From a stranger, the header is the client's own claim: ignored.
        assert_eq!(
            limiter.client_address(stranger, &forwarded("203.0.113.7")),
            stranger
        );
        // Through our proxies: the nearest hop that is not one of them.
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            limiter.client_address(proxy, &forwarded("1.2.3.4, 203.0.113.7, 10.9.9.9")),
            client
        );
        // A proxy that forwarded nothing: the proxy itself.
        assert_eq!(limiter.client_address(proxy, &HeaderMap::new()), proxy);
        // IPv4-mapped IPv6 peers are their IPv4 address.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            limiter.client_address(mapped, &forwarded("203.0.113.7")),
            client
        );
    }

    #[tokio::test]
    async fn a_bucket_refuses_past_its_burst_and_says_how_long_to_wait() {
        let limiter = limiter(&[]);
        let user = Bucket::User(7);
        assert!(limiter.take(Class::BuyNow, &user).is_ok());
        let wait = limiter
            .take(Class::BuyNow, &user)
            .expect_err("one a second, burst of one");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        // Another user, and another class of the same user, have their own buckets.
        assert!(limiter.take(Class::BuyNow, &Bucket::User(8)).is_ok());
        assert!(limiter.take(Class::Reads, &user).is_ok());
        assert_eq!(limiter.buckets(), 3);
    }

    #[tokio::test]
    async fn buckets_full_again_are_evicted() {
        let limiter = limiter(&[]);
        for user in 0..100 {
            assert!(limiter.take(Class::Reads, &Bucket::User(user)).is_ok());
        }
        assert_eq!(limiter.buckets(), 100);
        // Still refilling: kept.
        limiter.evict_idle();
        assert_eq!(limiter.buckets(), 100);
        // One a second: two seconds later (governor keeps a bucket one emission interval
        // past full) every bucket is as good as absent.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        limiter.evict_idle();
        assert_eq!(limiter.buckets(), 0);
    }
}

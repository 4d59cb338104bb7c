//! The signed-cookie adapter: a cart id with no session store.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{digest, SessionAdapter, CART_ID_KEY};
use crate::error::BoxError;

/// How the signed cookie of [`SignedCookieSession`] is written and checked.
///
/// The cookie is signed (HMAC-SHA256) with the app's [`tower_cookies::Key`]; it is
/// `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless switched off, and lives
/// [`max_age`](Self::max_age) (30 days by default) from the moment the cart is created. The
/// time it was issued is inside the signed value, so the server refuses a cookie older than
/// `max_age` even when a client keeps sending it after the browser would have dropped it.
///
/// Keys can be rotated: sign with the new key and keep the old ones for verifying
/// ([`previous_key`](Self::previous_key)). A cookie that verifies only with an old key is
/// accepted and sent back signed with the current key.
///
/// ```
/// use axum_cart::SignedCookieConfig;
/// use tower_cookies::Key;
///
/// # let (current, last_year) = (Key::generate(), Key::generate());
/// let config = SignedCookieConfig::new(current)
///     .previous_key(last_year) // cookies signed before the rotation still work
///     .secure(false) // plain-HTTP development only
///     .max_age(time::Duration::days(7));
/// ```
#[derive(Clone)]
#[must_use]
pub struct SignedCookieConfig {
    key: tower_cookies::Key,
    previous: Vec<tower_cookies::Key>,
    secure: bool,
    max_age: time::Duration,
}

impl std::fmt::Debug for SignedCookieConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedCookieConfig")
            .field("key", &"<redacted>")
            .field("previous_keys", &self.previous.len())
            .field("secure", &self.secure)
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl SignedCookieConfig {
    /// The default lifetime of the cookie: 30 days.
    pub const DEFAULT_MAX_AGE: time::Duration = time::Duration::days(30);

    /// Signed with `key`, `Secure`, 30 days.
    pub fn new(key: tower_cookies::Key) -> Self {
        SignedCookieConfig {
            key,
            previous: Vec::new(),
            secure: true,
            max_age: Self::DEFAULT_MAX_AGE,
        }
    }

    /// Also accepts cookies signed with `key` (an earlier key, after a rotation); new
    /// cookies are always signed with the key of [`new`](Self::new). Call once per old key.
    pub fn previous_key(mut self, key: tower_cookies::Key) -> Self {
        self.previous.push(key);
        self
    }

    /// Whether the cookie carries `Secure` (default `true`: browsers then send it over
    /// HTTPS and `localhost` only).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The cookie's `Max-Age`, also enforced by the server from the issue time signed into
    /// the cookie (default 30 days). Negative values count as zero.
    pub fn max_age(mut self, max_age: time::Duration) -> Self {
        self.max_age = max_age.max(time::Duration::ZERO);
        self
    }
}

/// A cart id kept in a signed cookie, for apps with no server-side session: the
/// counterpart of django-cart's `CookieSessionAdapter` + `CartCookieMiddleware`.
///
/// Each key is one cookie of the same name (the cart id is the cookie `CART-ID`); its value
/// is the signed `<value>.<issued at, Unix seconds>`. A cookie is ignored (the visitor
/// simply has no cart id and gets a fresh cart) when its signature does not verify with the
/// current or a previous key (tampered, forged, unsigned, signed with another key, garbage),
/// when it is older than the configured `max_age`, and when the request carries two valid
/// cookies of the name with different values (a cookie planted for a parent domain beside
/// the visitor's own: neither can be trusted to be the visitor's). Changes are collected here
/// and sent as `Set-Cookie` headers by [`CartLayer`](crate::CartLayer) (see
/// [`set_cookie_headers`](Self::set_cookie_headers)); nothing is sent when nothing changed.
pub struct SignedCookieSession {
    config: SignedCookieConfig,
    /// The verified, unexpired values of the request, then this request's changes.
    values: Mutex<HashMap<String, Issued>>,
    /// The `Set-Cookie` headers to send.
    changes: Mutex<Vec<tower_cookies::cookie::Cookie<'static>>>,
}

/// A value with the time it was issued (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issued {
    value: String,
    at: i64,
}

impl std::fmt::Debug for SignedCookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedCookieSession")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SignedCookieSession {
    /// The session of a request, read from its `Cookie` headers.
    pub fn from_headers(headers: &axum::http::HeaderMap, config: SignedCookieConfig) -> Self {
        use tower_cookies::cookie::Cookie;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Every valid value of each name, and whether it verified only with an old key.
        let mut seen: HashMap<String, Vec<(Issued, bool)>> = HashMap::new();
        for header in headers.get_all(axum::http::header::COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            for part in text.split(';') {
                let Ok(cookie) = Cookie::parse_encoded(part.trim().to_owned()) else {
                    continue;
                };
                if let Some(valid) = config.verify(&cookie, now) {
                    seen.entry(cookie.name().to_owned())
                        .or_default()
                        .push(valid);
                }
            }
        }
        let mut values = HashMap::new();
        let mut changes = Vec::new();
        for (name, copies) in seen {
            let Some((issued, old_key)) = copies.first() else {
                continue;
            };
            if copies.iter().any(|(other, _)| other != issued) {
                // Two valid cookies that disagree: trust neither.
                continue;
            }
            if *old_key {
                // Verified with a previous key: send it back signed with the current one,
                // keeping its issue time (and so its expiry).
                changes.push(config.signed(&name, issued, now));
            }
            values.insert(name, issued.clone());
        }
        SignedCookieSession {
            config,
            values: Mutex::new(values),
            changes: Mutex::new(changes),
        }
    }

    fn values(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Issued>>, BoxError> {
        self.values
            .lock()
            .map_err(|_| "cookie session lock poisoned".into())
    }

    fn push(&self, cookie: tower_cookies::cookie::Cookie<'static>) -> Result<(), BoxError> {
        let mut changes = self
            .changes
            .lock()
            .map_err(|_| "cookie session lock poisoned")?;
        changes.retain(|c| c.name() != cookie.name());
        changes.push(cookie);
        Ok(())
    }

    /// The `Set-Cookie` values for what changed since the request (empty if nothing did).
    pub fn set_cookie_headers(&self) -> Vec<axum::http::HeaderValue> {
        let Ok(changes) = self.changes.lock() else {
            return Vec::new();
        };
        changes
            .iter()
            .filter_map(|c| axum::http::HeaderValue::from_str(&c.to_string()).ok())
            .collect()
    }
}

impl SignedCookieConfig {
    /// The value of `cookie` if it verifies with the current key (`false`) or a previous one
    /// (`true`), carries an issue time, and is not older than `max_age`.
    fn verify(
        &self,
        cookie: &tower_cookies::cookie::Cookie<'_>,
        now: i64,
    ) -> Option<(Issued, bool)> {
        use tower_cookies::cookie::CookieJar;
        let keys = std::iter::once(&self.key).chain(&self.previous);
        for (i, key) in keys.enumerate() {
            let mut jar = CookieJar::new();
            jar.add_original(cookie.clone().into_owned());
            let Some(plain) = jar.signed(key).get(cookie.name()) else {
                continue;
            };
            let (value, at) = plain.value().rsplit_once('.')?;
            let at: i64 = crate::product::parse_plain_int(at)?;
            let age = now.saturating_sub(at);
            if age < -300 || age > self.max_age.whole_seconds() {
                return None;
            }
            return Some((
                Issued {
                    value: value.to_owned(),
                    at,
                },
                i > 0,
            ));
        }
        None
    }

    /// The `Set-Cookie` of `value`, signed with the current key, expiring `max_age` after
    /// it was issued.
    fn signed(
        &self,
        name: &str,
        issued: &Issued,
        now: i64,
    ) -> tower_cookies::cookie::Cookie<'static> {
        use tower_cookies::cookie::{Cookie, CookieJar, SameSite};
        let left = self.max_age - time::Duration::seconds(now.saturating_sub(issued.at));
        let cookie = Cookie::build((name.to_owned(), format!("{}.{}", issued.value, issued.at)))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(left.max(time::Duration::ZERO))
            .build();
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(cookie);
        jar.get(name)
            .cloned()
            .unwrap_or_else(|| Cookie::new(name.to_owned(), String::new()))
    }
}

#[async_trait]
impl SessionAdapter for SignedCookieSession {
    async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        Ok(self.values()?.get(key).map(|i| i.value.clone()))
    }
    async fn set(&self, key: &str, value: &str) -> Result<(), BoxError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let issued = Issued {
            value: value.to_owned(),
            at: now,
        };
        self.push(self.config.signed(key, &issued, now))?;
        self.values()?.insert(key.to_owned(), issued);
        Ok(())
    }
    /// A digest of the cart id the (verified) cookie names: requests carrying the same
    /// cookie share the session's next cart.
    fn identity(&self) -> Option<String> {
        let values = self.values().ok()?;
        let id = values.get(CART_ID_KEY)?;
        Some(digest(&format!("signed-cookie:{}.{}", id.value, id.at)))
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        use tower_cookies::cookie::{Cookie, SameSite};
        if self.values()?.remove(key).is_none() {
            return Ok(());
        }
        let removal = Cookie::build((key.to_owned(), String::new()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.config.secure)
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH)
            .build();
        self.push(removal)?;
        Ok(())
    }
}

//! [`SameSiteLayer`]: the cross-site request guard.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use tower::{Layer, Service};

use crate::http::respond::{Problem, Reply};

/// A tower layer that answers 403 `cross_site_request` to a browser's request from another
/// site that would change something (any method but GET, HEAD, OPTIONS and TRACE).
///
/// How a request is judged:
///
/// 1. If it has `Sec-Fetch-Site` (every current browser sends it), `same-origin` and `none`
///    (the user typed the address or used a bookmark) pass; `same-site` (a sibling subdomain,
///    such as `blog.example.com` posting to `shop.example.com`) passes only with
///    [`allow_same_site`](Self::allow_same_site); anything else is refused.
/// 2. Otherwise, if it has `Origin`, the origin's host and port must be the request's `Host`
///    (default ports ignored); `Origin: null` and malformed origins are refused.
/// 3. A request with neither header (curl, a server-side client, an old browser's form post
///    from the same page) passes.
///
/// The refusal is the cart's error answer: a JSON problem with `"code": "cross_site_request"`
/// for JSON clients, a small HTML page otherwise. [`cart_router`](crate::cart_router) and
/// [`admin_router`](crate::admin_router) install it themselves; put it on the app's own
/// routes too (a checkout page, a login form).
///
/// On the app's own routes:
///
/// ```
/// use axum::{routing::post, Router};
/// use axum_cart::SameSiteLayer;
///
/// let app: Router = Router::new()
///     .route("/checkout", post(|| async { "placed" }))
///     // Every POST, PUT, PATCH and DELETE below is refused with 403 when a browser says it
///     // comes from another site.
///     .layer(SameSiteLayer::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct SameSiteLayer {
    allow_same_site: bool,
}

impl SameSiteLayer {
    /// The strict default: only same-origin requests may change anything.
    pub fn new() -> Self {
        SameSiteLayer::default()
    }

    /// Also accept `Sec-Fetch-Site: same-site`, for apps served from several subdomains of
    /// one site. Off by default: every subdomain of the site (a user-content host, a
    /// marketing page on a third-party platform) could then post to the cart.
    pub fn allow_same_site(mut self, allow: bool) -> Self {
        self.allow_same_site = allow;
        self
    }

    /// Whether a browser says this request comes from another site (the rules above); a
    /// request's method is not looked at.
    ///
    /// ```
    /// use axum::http::{HeaderMap, Uri};
    /// use axum_cart::SameSiteLayer;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("sec-fetch-site", "same-site".parse().unwrap());
    /// let uri = Uri::from_static("/cart/checkout");
    /// assert!(SameSiteLayer::new().is_cross_site(&headers, &uri));
    /// assert!(!SameSiteLayer::new().allow_same_site(true).is_cross_site(&headers, &uri));
    /// ```
    pub fn is_cross_site(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
            return match site.as_str() {
                "same-origin" | "none" => false,
                "same-site" => !self.allow_same_site,
                _ => true,
            };
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return false;
        };
        let Ok(origin) = origin.to_str() else {
            return true;
        };
        let Some((scheme, origin_host)) = origin.trim().split_once("://") else {
            return true;
        };
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
        let Some(host) = host else { return true };
        let normal = |host: &str| {
            let host = host.trim().trim_end_matches('/').to_ascii_lowercase();
            let default_port = if scheme.eq_ignore_ascii_case("https") {
                ":443"
            } else {
                ":80"
            };
            host.strip_suffix(default_port)
                .map(str::to_owned)
                .unwrap_or(host)
        };
        normal(origin_host) != normal(&host)
    }

    /// Whether the layer refuses this request: a method that changes state, from another site.
    fn refuses<B>(&self, req: &Request<B>) -> bool {
        let safe = matches!(
            *req.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        !safe && self.is_cross_site(req.headers(), req.uri())
    }
}

impl<S> Layer<S> for SameSiteLayer {
    type Service = SameSiteService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SameSiteService {
            inner,
            policy: *self,
        }
    }
}

/// The service of [`SameSiteLayer`].
#[derive(Debug, Clone)]
pub struct SameSiteService<S> {
    inner: S,
    policy: SameSiteLayer,
}

impl<S, B> Service<Request<B>> for SameSiteService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.policy.refuses(&req) {
            let refusal = Problem::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "Cross-site requests cannot change anything here.",
            );
            let res = Reply::of(req.headers(), req.extensions())
                .error(refusal)
                .into_response();
            return Box::pin(async move { Ok(res) });
        }
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(policy: SameSiteLayer, pairs: &[(&'static str, &'static str)]) -> bool {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, v.parse().unwrap());
        }
        policy.is_cross_site(&headers, &Uri::from_static("/cart/add/book/1"))
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        let strict = SameSiteLayer::new();
        let lenient = SameSiteLayer::new().allow_same_site(true);
        for (site, strict_refuses, lenient_refuses) in [
            ("same-origin", false, false),
            ("none", false, false),
            ("same-site", true, false),
            ("cross-site", true, true),
            ("SAME-ORIGIN", false, false),
            ("garbage", true, true),
        ] {
            let h = [("sec-fetch-site", site), ("origin", "http://evil.example")];
            assert_eq!(judge(strict, &h[..1]), strict_refuses, "{site}");
            assert_eq!(judge(lenient, &h[..1]), lenient_refuses, "{site}");
        }
        // Fetch metadata wins over a matching Origin.
        assert!(judge(
            strict,
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://shop.test"),
                ("host", "shop.test")
            ]
        ));
    }

    #[test]
    fn origin_must_match_host_without_fetch_metadata() {
        let p = SameSiteLayer::new();
        assert!(!judge(p, &[]), "no browser headers: a non-browser client");
        assert!(!judge(
            p,
            &[("origin", "http://shop.test"), ("host", "shop.test")]
        ));
        assert!(!judge(
            p,
            &[("origin", "https://shop.test:443"), ("host", "shop.test")]
        ));
        assert!(judge(
            p,
            &[("origin", "http://evil.example"), ("host", "shop.test")]
        ));
        assert!(judge(
            p,
            &[("origin", "http://shop.test:8080"), ("host", "shop.test")]
        ));
        assert!(judge(p, &[("origin", "null"), ("host", "shop.test")]));
        assert!(
            judge(p, &[("origin", "http://shop.test")]),
            "no host to compare"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_the_carts_error_answer_in_the_clients_format() {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/buy", axum::routing::post(|| async { "bought" }))
            .layer(SameSiteLayer::new());
        let call = |method: Method, accept: &'static str| {
            let req = Request::builder()
                .method(method)
                .uri("/buy")
                .header("sec-fetch-site", "cross-site")
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(req)
        };
        let json = call(Method::POST, "application/json").await.unwrap();
        assert_eq!(json.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            json.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let html = call(Method::POST, "text/html").await.unwrap();
        assert_eq!(html.status(), StatusCode::FORBIDDEN);
        assert!(html.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let read = call(Method::GET, "text/html").await.unwrap();
        assert_eq!(
            read.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "a GET passes the guard"
        );
    }
}

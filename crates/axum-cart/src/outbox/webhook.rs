//! [`WebhookSink`]: the outbox's events as HTTP POSTs signed per Standard Webhooks 1.0.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use async_trait::async_trait;

use super::error::redacted;
use super::{EventSink, OutboxEvent, SinkError};
use crate::error::BoxError;

/// POSTs every event to one URL, signed as [Standard Webhooks] 1.0 has it: the body is the
/// event's JSON document (`content-type: application/json`), and the headers are
/// `webhook-id` (the event's id, the same on every retry: dedupe on it),
/// `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`:
/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the secret.
/// Any Standard Webhooks library verifies it (and should refuse timestamps too far from
/// its clock, against replays).
///
/// A delivery succeeds on a 2xx answer only; any other status (redirects are not followed)
/// or no answer fails it, and the relay retries it later.
///
/// [Standard Webhooks]: https://www.standardwebhooks.com/
///
/// ```no_run
/// # fn demo(carts: axum_cart::Carts) -> Result<(), axum_cart::SinkError> {
/// use axum_cart::{Relay, WebhookSink};
///
/// let hook = WebhookSink::new(
///     "https://crm.example.com/hooks/cart",
///     "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
/// )?;
/// Relay::new(&carts).sink(hook).spawn();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookSink {
    url: reqwest::Url,
    key: Hmac<Sha256>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &redacted(self.url.as_str()))
            .finish_non_exhaustive()
    }
}

/// The longest part of an error answer's body an error message shows.
const BODY_EXCERPT: usize = 200;

impl WebhookSink {
    /// A sink POSTing to `url` (`http://` or `https://`) with `secret`, given as Standard
    /// Webhooks writes it: `whsec_` and the base64 of the key's bytes (24 to 64 random bytes
    /// are the standard's advice). Anything else is refused, as is a URL that does not
    /// parse.
    pub fn new(url: &str, secret: &str) -> Result<WebhookSink, SinkError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            SinkError::Config(format!("webhook: {:?} is not a URL: {e}", redacted(url)))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SinkError::Config(format!(
                "webhook: {} is not an http:// or https:// URL",
                redacted(url)
            )));
        }
        let key = secret_key(secret)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("axum-cart/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SinkError::connect("webhook", "setting up the HTTP client", e))?;
        Ok(WebhookSink {
            url: parsed,
            key,
            client,
        })
    }

    /// `v1,<signature>` of `body` sent as message `id` at `timestamp`.
    fn signature(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The HMAC key of a `whsec_…` secret.
fn secret_key(secret: &str) -> Result<Hmac<Sha256>, SinkError> {
    let refused = |why: &str| {
        SinkError::Config(format!(
            "webhook: the secret must be `whsec_` followed by base64 (as Standard Webhooks \
             writes it): {why}"
        ))
    };
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| refused("it does not start with `whsec_`"))?;
    let bytes = BASE64
        .decode(encoded.trim())
        .map_err(|e| refused(&format!("what follows `whsec_` is not base64 ({e})")))?;
    if bytes.is_empty() {
        return Err(refused("the key is empty"));
    }
    Hmac::<Sha256>::new_from_slice(&bytes).map_err(|_| refused("the key is not usable"))
}

#[async_trait]
impl EventSink for WebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn deliver(&self, event: &OutboxEvent) -> Result<(), BoxError> {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = self.signature(&event.id, timestamp, &event.body);
        let answer = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", event.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(event.body.clone())
            .send()
            .await
            // reqwest's errors name the URL: the credentials in it stay out of the outbox.
            .map_err(|e| e.without_url())?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let body = answer.text().await.unwrap_or_default();
        let mut excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
        if body.trim().chars().count() > BODY_EXCERPT {
            excerpt.push('…');
        }
        let mut message = format!("{} answered {status}", redacted(self.url.as_str()));
        if !excerpt.is_empty() {
            message.push_str(": ");
            message.push_str(&excerpt);
        }
        Err(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_libraries_do() {
        // The test vector of the Standard Webhooks reference libraries.
        let sink = WebhookSink::new(
            "https://example.com/hook",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .expect("valid");
        assert_eq!(
            sink.signature(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_other_secrets_and_urls() {
        let url = "https://example.com/hook";
        for (secret, why) in [
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "does not start with `whsec_`",
            ),
            ("whsec_not base64!", "is not base64"),
            ("whsec_", "the key is empty"),
            ("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start"),
        ] {
            let err = WebhookSink::new(url, secret).expect_err(secret).to_string();
            assert!(err.contains(why), "{secret}: {err}");
            assert!(!err.contains("MfKQ9r8"), "the secret stays out: {err}");
        }
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let err = WebhookSink::new("not a url", secret).expect_err("url");
        assert!(err.to_string().contains("is not a URL"), "{err}");
        let err = WebhookSink::new("ftp://example.com/x", secret).expect_err("scheme");
        assert!(err.to_string().contains("http:// or https://"), "{err}");
        let sink = WebhookSink::new("https://u:hunter2@example.com/x", secret).expect("valid");
        assert!(!format!("{sink:?}").contains("hunter2"), "{sink:?}");
    }
}

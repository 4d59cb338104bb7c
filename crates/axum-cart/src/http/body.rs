//! Request bodies: an HTML form or a JSON object, read within axum's
//! [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit), and the [`Quantity`] field.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::RequestExt;
use serde_json::Value;

use crate::http::respond::{ErrorResponse, Problem, Reply};
use crate::LineOptions;

/// The fields of a request body: an HTML form (`application/x-www-form-urlencoded`), a JSON
/// object, or nothing (an empty body, whatever its type). An extractor whose rejection is
/// the cart's error answer: 413 over the body limit, 415 for another type, 400 for a body
/// that does not parse.
#[derive(Debug)]
pub(crate) enum Fields {
    Empty,
    Form(Vec<(String, String)>),
    Json(serde_json::Map<String, Value>),
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ErrorResponse;

    async fn from_request(mut req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let reply = Reply::of(req.headers(), req.extensions());
        let limit = limit_in_force(&mut req);
        let too_large = || {
            let limit = limit.map_or_else(String::new, |n| format!(" {n} bytes"));
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body is larger than{limit}."),
            )
        };
        // A declared length over the limit is refused before anything is read.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.zip(limit).is_some_and(|(n, limit)| n > limit) {
            return Err(reply.error(too_large()));
        }
        let content_type = media_type(req.headers());
        let bytes = match Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
                return Err(reply.error(too_large()))
            }
            Err(_) => {
                return Err(reply.error(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "The request body could not be read.",
                )))
            }
        };
        Fields::parse(&content_type, &bytes).map_err(|p| reply.error(p))
    }
}

/// The largest body axum reads for this request: its
/// [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit), or axum's default; `None` when
/// the limit is disabled. Read the way axum applies it, on a body of unknown length.
pub(crate) fn limit_in_force(req: &mut Request) -> Option<u64> {
    // An empty stream: a body that does not say how long it is.
    let mut probe = Request::new(Body::from_stream(Body::empty().into_data_stream()));
    std::mem::swap(probe.extensions_mut(), req.extensions_mut());
    let (mut parts, body) = probe.with_limited_body().into_parts();
    std::mem::swap(&mut parts.extensions, req.extensions_mut());
    body.size_hint().upper()
}

/// The media type of the body, lowercase, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

impl Fields {
    fn parse(content_type: &str, bytes: &[u8]) -> Result<Fields, Problem> {
        if bytes.is_empty() {
            return Ok(Fields::Empty);
        }
        let json = content_type == "application/json"
            || (content_type.starts_with("application/") && content_type.ends_with("+json"));
        if content_type == "application/x-www-form-urlencoded" {
            serde_urlencoded::from_bytes(bytes)
                .map(Fields::Form)
                .map_err(|_| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_form",
                        "The form data could not be read.",
                    )
                })
        } else if json {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(map)) => Ok(Fields::Json(map)),
                Ok(_) => Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The JSON body must be an object, such as {\"quantity\": 2}.",
                )),
                Err(e) => Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("The body is not valid JSON: {e}."),
                )),
            }
        } else {
            Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as application/x-www-form-urlencoded or application/json.",
            ))
        }
    }

    /// A text field: the first of a repeated form field; a JSON string (`null` is absent,
    /// another JSON value is `Err`).
    pub(crate) fn text(&self, name: &str) -> Option<Result<String, NotText>> {
        match self {
            Fields::Empty => None,
            Fields::Form(pairs) => pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Ok(v.clone())),
            Fields::Json(map) => match map.get(name)? {
                Value::Null => None,
                Value::String(s) => Some(Ok(s.clone())),
                _ => Some(Err(NotText)),
            },
        }
    }

    /// The line options: form fields `option.<name>=<value>`, or a JSON `"options"` object
    /// of strings (`null` is none).
    pub(crate) fn options(&self) -> Result<LineOptions, Problem> {
        let invalid = |m: &str| Problem::new(StatusCode::BAD_REQUEST, "invalid_options", m);
        let pairs: Vec<(&str, &str)> = match self {
            Fields::Empty => Vec::new(),
            Fields::Form(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("option.")?, v.as_str())))
                .collect(),
            Fields::Json(map) => match map.get("options") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(options)) => {
                    let mut pairs = Vec::with_capacity(options.len());
                    for (name, value) in options {
                        let Value::String(value) = value else {
                            return Err(invalid(
                                "Each option's value must be a string, such as {\"size\": \"L\"}.",
                            ));
                        };
                        pairs.push((name.as_str(), value.as_str()));
                    }
                    pairs
                }
                Some(_) => {
                    return Err(invalid(
                        "\"options\" must be an object of strings, such as {\"size\": \"L\"}.",
                    ))
                }
            },
        };
        Ok(LineOptions::from_pairs(pairs)?)
    }

    /// The `quantity` field, if given.
    pub(crate) fn quantity(&self) -> Result<Option<i64>, Problem> {
        let Fields::Json(map) = self else {
            return self
                .text("quantity")
                .map(|t| parse_quantity(&t?))
                .transpose();
        };
        match map.get("quantity") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(q) = n.as_i64() {
                    return Ok(Some(q));
                }
                if n.as_u64().is_some() {
                    return Ok(Some(i64::MAX));
                }
                match n.as_f64() {
                    // `2.0` is 2; out-of-range values saturate (`as` does).
                    Some(f) if f.fract() == 0.0 && f.is_finite() => Ok(Some(f as i64)),
                    _ => Err(bad_quantity(format!(
                        "Quantity must be a whole number, got {n}."
                    ))),
                }
            }
            Some(Value::String(s)) => parse_quantity(s).map(Some),
            Some(other) => Err(bad_quantity(format!(
                "Quantity must be a whole number, got {}.",
                shown(&other.to_string())
            ))),
        }
    }
}

/// A JSON field that is not a string.
#[derive(Debug)]
pub(crate) struct NotText;

impl From<NotText> for Problem {
    fn from(_: NotText) -> Self {
        bad_quantity("Quantity must be a whole number.")
    }
}

/// At most 60 characters of what the client sent, for a message.
pub(crate) fn shown(text: &str) -> String {
    text.chars().take(60).collect()
}

pub(crate) fn bad_quantity(message: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_quantity", message)
}

/// A quantity as typed: an optional `-` and ASCII digits (surrounding spaces allowed).
/// Out-of-range values saturate, so the cart reports them against its limits.
fn parse_quantity(text: &str) -> Result<i64, Problem> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_quantity(format!(
            "Quantity must be a whole number, got {:?}.",
            shown(text)
        )));
    }
    let value = digits.parse::<i64>().unwrap_or(i64::MAX);
    Ok(if negative { -value } else { value })
}

/// The `quantity` field of a form or JSON body, `None` when it is absent: what the cart
/// routes read, for an app's own routes.
///
/// The body is an HTML form (`quantity=2`; of a repeated field the first counts) or a JSON
/// object (`{"quantity": 2}`, an integer, `2.0` or a string of digits; `null` is absent); an
/// empty body has no quantity. A quantity is an optional `-` and ASCII digits, with spaces
/// around it allowed; values too large for an `i64` saturate, so the cart refuses them as
/// over its maximum. The body is read within the route's
/// [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit) (axum's default is 2 MB; a
/// declared `Content-Length` over it is refused before reading).
///
/// It rejects with an [`ErrorResponse`] in the client's format: 400 `invalid_quantity`
/// (also `invalid_form`, `invalid_json`, `invalid_body`), 413 `payload_too_large`, 415
/// `unsupported_media_type`.
///
/// ```
/// use axum::{extract::DefaultBodyLimit, routing::post, Router};
/// use axum_cart::{Cart, CartError, ProductRef, Quantity};
/// use rust_decimal::Decimal;
///
/// async fn add_gift_card(mut cart: Cart, Quantity(quantity): Quantity) -> Result<String, CartError> {
///     let card = ProductRef::new("gift-card", 1)?;
///     cart.add(&card, Decimal::new(2500, 2), quantity.unwrap_or(1)).await?;
///     Ok(cart.count().await?.to_string())
/// }
///
/// let app: Router = Router::new()
///     .route("/gift-card", post(add_gift_card))
///     .layer(DefaultBodyLimit::max(16 * 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(pub Option<i64>);

impl<S: Send + Sync> FromRequest<S> for Quantity {
    type Rejection = ErrorResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let reply = Reply::of(req.headers(), req.extensions());
        let fields = Fields::from_request(req, state).await?;
        fields.quantity().map(Quantity).map_err(|p| reply.error(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";

    fn quantity(content_type: &str, body: &str) -> Result<Option<i64>, &'static str> {
        Fields::parse(content_type, body.as_bytes())
            .and_then(|f| f.quantity())
            .map_err(|p| p.code)
    }

    #[test]
    fn quantities_from_forms_and_json() {
        assert_eq!(quantity(FORM, "quantity=2"), Ok(Some(2)));
        // `+` is a space in a form.
        assert_eq!(quantity(FORM, "quantity=+2"), Ok(Some(2)));
        assert_eq!(quantity(FORM, "quantity=%202%20"), Ok(Some(2)));
        assert_eq!(quantity(FORM, "quantity=-3&quantity=1"), Ok(Some(-3)));
        assert_eq!(quantity(FORM, "other=1"), Ok(None));
        assert_eq!(quantity(FORM, "quantity=1.5"), Err("invalid_quantity"));
        assert_eq!(quantity(FORM, "quantity="), Err("invalid_quantity"));
        assert_eq!(
            quantity(FORM, "quantity=99999999999999999999"),
            Ok(Some(i64::MAX))
        );
        assert_eq!(quantity(JSON, r#"{"quantity": 2}"#), Ok(Some(2)));
        assert_eq!(quantity(JSON, r#"{"quantity": 2.0}"#), Ok(Some(2)));
        assert_eq!(quantity(JSON, r#"{"quantity": "4"}"#), Ok(Some(4)));
        assert_eq!(quantity(JSON, r#"{"quantity": null}"#), Ok(None));
        assert_eq!(
            quantity(JSON, r#"{"quantity": 2.5}"#),
            Err("invalid_quantity")
        );
        assert_eq!(
            quantity(JSON, r#"{"quantity": true}"#),
            Err("invalid_quantity")
        );
        assert_eq!(
            quantity(JSON, r#"{"quantity": 18446744073709551615}"#),
            Ok(Some(i64::MAX))
        );
        assert_eq!(quantity("text/plain", ""), Ok(None), "empty is no fields");
    }

    #[test]
    fn bodies_that_are_refused() {
        assert_eq!(quantity(JSON, "[1]"), Err("invalid_json"));
        assert_eq!(quantity(JSON, "{"), Err("invalid_json"));
        assert_eq!(
            quantity("application/vnd.cart+json", r#"{"quantity": 1}"#),
            Ok(Some(1))
        );
        for t in ["text/plain", "", "application/jsonp", "multipart/form-data"] {
            assert_eq!(
                quantity(t, "quantity=1"),
                Err("unsupported_media_type"),
                "{t}"
            );
        }
    }

    #[test]
    fn options_from_forms_and_json() {
        let options = |content_type: &str, body: &str| {
            Fields::parse(content_type, body.as_bytes())
                .and_then(|f| f.options())
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                })
                .map_err(|p| p.code)
        };
        assert_eq!(
            options(FORM, "quantity=1&option.size=L&option.+grind+=fine&other=x"),
            Ok(vec!["grind=fine".to_owned(), "size=L".to_owned()])
        );
        assert_eq!(options(FORM, "quantity=1"), Ok(vec![]));
        assert_eq!(
            options(JSON, r#"{"options": {"size": "L"}}"#),
            Ok(vec!["size=L".to_owned()])
        );
        assert_eq!(options(JSON, r#"{"options": null}"#), Ok(vec![]));
        assert_eq!(
            options(JSON, r#"{"options": {"size": 1}}"#),
            Err("invalid_options")
        );
        assert_eq!(
            options(JSON, r#"{"options": ["L"]}"#),
            Err("invalid_options")
        );
        assert_eq!(options(FORM, "option.bad%21=1"), Err("invalid_options"));
    }

    #[test]
    fn text_fields() {
        let form = Fields::parse(FORM, b"code=A&code=B").unwrap();
        assert_eq!(form.text("code").unwrap().unwrap(), "A");
        let json = Fields::parse(JSON, br#"{"code": 5, "n": null}"#).unwrap();
        assert!(json.text("code").unwrap().is_err());
        assert!(json.text("n").is_none());
    }

    #[tokio::test]
    async fn the_body_limit_is_axums() {
        use axum::extract::DefaultBodyLimit;
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::post(|Quantity(q): Quantity| async move { format!("{q:?}") }),
            )
            .layer(DefaultBodyLimit::max(8));
        let call = |body: &'static str, length: Option<&'static str>| {
            let mut req = Request::post("/").header("content-type", FORM);
            if let Some(length) = length {
                req = req.header("content-length", length);
            }
            app.clone().oneshot(req.body(Body::from(body)).unwrap())
        };
        assert_eq!(call("quantity=2", None).await.unwrap().status(), 413);
        assert_eq!(call("q=2", Some("9")).await.unwrap().status(), 413);
        assert_eq!(call("q=2", None).await.unwrap().status(), 200);
    }
}

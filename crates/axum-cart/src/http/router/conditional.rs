//! Versions over HTTP: the `ETag` of the cart routes, `If-Match` on the changes and
//! `If-None-Match` on `GET /cart`.
//!
//! The entity tag of a cart is `"<version>.<created>"` (strong): its version and when the
//! cart row was created (Unix seconds), `"0.0"` for a visitor with no cart row yet. The
//! version alone would let the tag of one cart match another (the user's cart a login
//! merges into, the session's next cart after a checkout); the cart's id would tell it,
//! but no answer ever gives a cart id away. The same tag goes on the JSON and the HTML
//! answers: it names the cart's state, and the answers are `no-store`.
//!
//! A change sent with `If-Match` goes ahead only if the cart, locked in the change's own
//! transaction, is at a version the header lists ([`Cart::if_version`]); otherwise it is
//! refused with 412 `version_mismatch` and nothing is written, the JSON body carrying the
//! current cart as `"cart"`. `If-Match: *` matches any cart. `GET /cart` with an
//! `If-None-Match` listing the current tag is 304, with the tag and no body.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{CartDetails, CartRequest};
use crate::cart::{Expected, Which};
use crate::http::respond::{no_store, Format, Problem};
use crate::{Cart, CartError};

/// An entity-tag list of `If-Match` or `If-None-Match`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagList {
    /// `*`.
    Any,
    /// The tags, in order.
    Tags(Vec<Tag>),
    /// Not an entity-tag list.
    Malformed,
}

/// One entity tag as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    weak: bool,
    /// What is between the quotes.
    opaque: String,
}

impl Tag {
    /// The version and creation time a tag of ours names; `None` for a tag that is not
    /// one.
    fn version(&self) -> Option<(u64, i64)> {
        let (version, created) = self.opaque.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(version) || !digits(created) {
            return None;
        }
        Some((version.parse().ok()?, created.parse().ok()?))
    }
}

/// The preconditions of one request to the cart routes: `If-Match` on a change,
/// `If-None-Match` on a read. Either is absent (`None`) when the request does not send it.
#[derive(Debug, Clone, Default)]
pub(super) struct Preconditions {
    if_match: Option<TagList>,
    if_none_match: Option<TagList>,
}

impl Preconditions {
    /// What the request's headers ask: `If-Match` is read on the changes (not on `GET` and
    /// `HEAD`), `If-None-Match` on `GET` and `HEAD` only.
    pub(super) fn of(method: &Method, headers: &HeaderMap) -> Preconditions {
        let read = *method == Method::GET || *method == Method::HEAD;
        let list = |name| parse(headers.get_all(name).iter());
        Preconditions {
            if_match: if read { None } else { list(header::IF_MATCH) },
            if_none_match: if read {
                list(header::IF_NONE_MATCH)
            } else {
                None
            },
        }
    }

    /// Makes the cart's changes conditional on `If-Match`; 400 `invalid_precondition` for
    /// a header that is not an entity-tag list. `*` is no condition.
    pub(super) fn apply(&self, cart: &mut Cart) -> Result<(), Problem> {
        match &self.if_match {
            None | Some(TagList::Any) => Ok(()),
            Some(TagList::Malformed) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_precondition",
                "If-Match must be \"*\" or a list of entity tags, such as \"3.1767225600\".",
            )),
            Some(TagList::Tags(tags)) => {
                // Strong comparison: a weak tag, or a tag that is not ours, matches nothing.
                let expected = tags
                    .iter()
                    .filter(|t| !t.weak)
                    .filter_map(Tag::version)
                    .map(|(version, created)| Expected {
                        cart: Which::Created(created),
                        version,
                    })
                    .collect();
                cart.expect(expected);
                Ok(())
            }
        }
    }

    /// Whether `If-None-Match` lists `tag` (weak comparison) or is `*`: the client has
    /// the cart as it is. A malformed header is ignored.
    pub(super) fn not_modified(&self, tag: &HeaderValue) -> bool {
        let ours = tag.as_bytes();
        match &self.if_none_match {
            Some(TagList::Any) => true,
            Some(TagList::Tags(tags)) => tags.iter().any(|t| {
                ours.len() == t.opaque.len() + 2 && &ours[1..ours.len() - 1] == t.opaque.as_bytes()
            }),
            None | Some(TagList::Malformed) => false,
        }
    }
}

/// Parses the field values of `If-Match` / `If-None-Match` (RFC 9110: `"*"` or a list of
/// entity tags, over any number of header lines); `None` when there is none.
fn parse<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<TagList> {
    let mut tags = Vec::new();
    let mut any = false;
    let mut seen = false;
    for value in values {
        seen = true;
        let mut rest = value.as_bytes();
        loop {
            rest = rest.trim_ascii_start();
            match rest {
                [] => break,
                [b',', more @ ..] => rest = more,
                [b'*', more @ ..] => {
                    any = true;
                    rest = more;
                }
                _ => {
                    let (weak, quoted) = match rest {
                        [b'W', b'/', more @ ..] => (true, more),
                        other => (false, other),
                    };
                    let [b'"', inside @ ..] = quoted else {
                        return Some(TagList::Malformed);
                    };
                    let Some(end) = inside.iter().position(|b| *b == b'"') else {
                        return Some(TagList::Malformed);
                    };
                    let opaque = &inside[..end];
                    // etagc: visible ASCII but the quote, or obs-text.
                    if !opaque
                        .iter()
                        .all(|b| *b == 0x21 || (0x23..=0x7e).contains(b) || *b >= 0x80)
                    {
                        return Some(TagList::Malformed);
                    }
                    tags.push(Tag {
                        weak,
                        opaque: String::from_utf8_lossy(opaque).into_owned(),
                    });
                    rest = inside[end + 1..].trim_ascii_start();
                    match rest {
                        [] => {}
                        [b',', more @ ..] => rest = more,
                        _ => return Some(TagList::Malformed),
                    }
                }
            }
        }
    }
    match (seen, any) {
        (false, _) => None,
        (true, true) if tags.is_empty() => Some(TagList::Any),
        // `*` is a field value of its own, never a member of a list.
        (true, true) => Some(TagList::Malformed),
        (true, false) => Some(TagList::Tags(tags)),
    }
}

/// The entity tag of the cart as `cart` has read it: `"<version>.<created>"`, `"0.0"` with
/// no row. No query when the cart has been read.
pub(super) async fn etag(cart: &Cart) -> Result<HeaderValue, CartError> {
    let (created, version) = cart.tag_parts().await?;
    HeaderValue::from_str(&format!("\"{version}.{created}\""))
        .map_err(|e| CartError::plugin("entity tag", e.into()))
}

/// `res` with the cart's `ETag`.
pub(super) fn with_etag(mut res: Response, tag: HeaderValue) -> Response {
    res.headers_mut().insert(header::ETAG, tag);
    res
}

/// `res` with the `ETag` of the cart as `cart` has read it.
pub(super) async fn tagged(res: Response, cart: &Cart) -> Result<Response, CartError> {
    Ok(with_etag(res, etag(cart).await?))
}

/// `304 Not Modified`: the tag, `no-store`, no body.
pub(super) fn not_modified(tag: HeaderValue) -> Response {
    let mut res = with_etag(StatusCode::NOT_MODIFIED.into_response(), tag);
    no_store(&mut res);
    res
}

/// A conflict (409) or a stale `If-Match` (412) answered in JSON carries the visitor's cart
/// as it is now, as the `cart` member: what the client shows instead of what it expected.
pub(super) async fn with_current_cart(req: &CartRequest, problem: Problem) -> Problem {
    let conflict = matches!(
        problem.status,
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED
    );
    if !conflict || req.reply.format != Format::Json {
        return problem;
    }
    let current = async {
        let cart = req.ctx.open().await?;
        CartDetails::load(&cart).await
    };
    match current.await {
        Ok(details) => match serde_json::to_value(&details) {
            Ok(value) => return problem.member("cart", value),
            Err(e) => tracing::warn!(error = %e, "the current cart could not be serialised"),
        },
        Err(e) => tracing::warn!(error = %e, "the current cart of a conflict could not be read"),
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&'static str]) -> Option<TagList> {
        let values: Vec<HeaderValue> = values.iter().map(|v| HeaderValue::from_static(v)).collect();
        parse(values.iter())
    }

    fn tag(weak: bool, opaque: &str) -> Tag {
        Tag {
            weak,
            opaque: opaque.to_owned(),
        }
    }

    #[test]
    fn entity_tag_lists_parse_per_rfc_9110() {
        assert_eq!(list(&[]), None);
        assert_eq!(list(&["*"]), Some(TagList::Any));
        assert_eq!(list(&[" * "]), Some(TagList::Any));
        assert_eq!(
            list(&["\"1.2\", W/\"1.3\"", ",\"x\""]),
            Some(TagList::Tags(vec![
                tag(false, "1.2"),
                tag(true, "1.3"),
                tag(false, "x")
            ]))
        );
        assert_eq!(list(&["\"\""]), Some(TagList::Tags(vec![tag(false, "")])));
        assert_eq!(list(&[""]), Some(TagList::Tags(Vec::new())));
        for bad in [
            "1.2",
            "\"1.2",
            "\"1.2\" x",
            "w/\"1\"",
            "\"a\"b\"",
            "*, \"1.2\"",
            "\"a b\"",
        ] {
            assert_eq!(list(&[bad]), Some(TagList::Malformed), "{bad}");
        }
    }

    #[test]
    fn our_tags_name_a_version_and_a_creation_time() {
        assert_eq!(
            tag(false, "3.1767225600").version(),
            Some((3, 1_767_225_600))
        );
        assert_eq!(tag(false, "0.0").version(), Some((0, 0)));
        for other in [
            "12",
            ".3",
            "12.",
            "a.1",
            "1.2.3",
            "+1.2",
            "1-2",
            "1.99999999999999999999999",
        ] {
            assert_eq!(tag(false, other).version(), None, "{other}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_ignores_a_bad_header() {
        let ours = HeaderValue::from_static("\"4.2\"");
        let pre = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            Preconditions::of(&Method::GET, &headers)
        };
        assert!(pre("\"4.2\"").not_modified(&ours));
        assert!(pre("W/\"4.2\"").not_modified(&ours));
        assert!(pre("\"1.1\", \"4.2\"").not_modified(&ours));
        assert!(pre("*").not_modified(&ours));
        assert!(!pre("\"4.1\"").not_modified(&ours));
        assert!(!pre("4.2").not_modified(&ours));
        assert!(!Preconditions::default().not_modified(&ours));
        // A change does not read If-None-Match, a read does not read If-Match.
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("bad"));
        assert!(!Preconditions::of(&Method::POST, &headers).not_modified(&ours));
        assert_eq!(Preconditions::of(&Method::GET, &headers).if_match, None);
    }
}

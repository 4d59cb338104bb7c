//! Save and restore: the seed's JSON format, parsed as untrusted input.
//!
//! ```json
//! {"book:42": {"kind": "book", "id": 42, "quantity": 2,
//!              "unit_price": "9.99", "total_price": "19.98"},
//!  "coffee:3:0f…(32 hex digits)": {"kind": "coffee", "id": 3, "quantity": 1,
//!              "unit_price": "12.50", "total_price": "12.50", "options": {"grind": "espresso"}},
//!  "__discount__": {"code": "SUMMER25"}}
//! ```
//!
//! A line with options is keyed by its [`LineKey`] and carries `options`; a payload saved
//! before options existed (keys `"kind:id"`, no `options`) restores as it always did.

use serde_json::{Map, Value};

use crate::error::CartError;
use crate::money;
use crate::options::{LineKey, LineOptions};
use crate::product::ProductRef;
use crate::types::{Line, BATCH_LIMIT, QUANTITY_LIMIT};

/// The reserved key carrying the applied discount.
pub const DISCOUNT_KEY: &str = "__discount__";

/// A frozen cart: its lines and discount code.
///
/// ```
/// use axum_cart::CartPayload;
/// let payload = CartPayload::parse(r#"{"book:42": {"quantity": 2, "unit_price": "9.99"}}"#).unwrap();
/// assert_eq!(payload.lines()[0].quantity, 2);
/// assert_eq!(payload.to_json()["book:42"]["total_price"], "19.98");
///
/// assert!(CartPayload::parse(r#"{"book:42": {"quantity": 0, "unit_price": "9.99"}}"#).is_err());
/// assert!(CartPayload::parse(r#"{"book:42": {"quantity": 1, "unit_price": "-1.00"}}"#).is_err());
/// assert!(CartPayload::parse("not json").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CartPayload {
    lines: Vec<Line>,
    discount_code: Option<String>,
}

impl CartPayload {
    pub(crate) fn new(lines: Vec<Line>, discount_code: Option<String>) -> Self {
        CartPayload {
            lines,
            discount_code,
        }
    }

    /// The lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The discount code, if one was applied.
    pub fn discount_code(&self) -> Option<&str> {
        self.discount_code.as_deref()
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for l in &self.lines {
            let mut entry = serde_json::json!({
                "kind": l.product.kind(),
                "id": l.product.id(),
                "quantity": l.quantity,
                "unit_price": money::cents(l.unit_price).to_string(),
                "total_price": l.total_price().to_string(),
            });
            if !l.options.is_empty() {
                entry["options"] = serde_json::json!(l.options);
            }
            map.insert(l.key().to_string(), entry);
        }
        if let Some(code) = &self.discount_code {
            map.insert(DISCOUNT_KEY.to_owned(), serde_json::json!({ "code": code }));
        }
        Value::Object(map)
    }

    /// Parses JSON text. See [`from_json`](Self::from_json).
    pub fn parse(text: &str) -> Result<Self, CartError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            CartError::InvalidPayload(format!("Invalid cart payload: not JSON: {e}"))
        })?;
        Self::from_json(&value)
    }

    /// Reads a payload, checking everything: keys `"kind:id"` or line keys
    /// `"kind:id:<32 hex digits>"` matching the item's `options` (or the reserved
    /// `"__discount__"`), options as [`LineOptions`] allows them, quantities from 1 to 1,000,000,000 as JSON integers, prices as
    /// decimal strings with at most two places, `kind`/`id`/`total_price` consistent with
    /// the key and line when present, at most 1000 lines.
    pub fn from_json(value: &Value) -> Result<Self, CartError> {
        let bad = |m: String| CartError::InvalidPayload(format!("Invalid cart payload: {m}"));
        let map = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        if map.len() > BATCH_LIMIT + 1 {
            return Err(bad(format!(
                "at most {BATCH_LIMIT} lines, got {}",
                map.len()
            )));
        }
        let mut lines = Vec::with_capacity(map.len());
        let mut discount_code = None;
        for (key, entry) in map {
            let shown: String = key.chars().take(60).collect();
            if key == DISCOUNT_KEY {
                let code = entry.get("code").and_then(Value::as_str).ok_or_else(|| {
                    bad(format!("{DISCOUNT_KEY} must be {{\"code\": \"<code>\"}}"))
                })?;
                discount_code = Some(code.to_owned());
                continue;
            }
            // Reserved keys have no ':'; a product kind may well start with "__".
            if key.starts_with("__") && !key.contains(':') {
                return Err(bad(format!("unknown reserved key {shown:?}")));
            }
            let (product, digest) =
                parse_key(key).map_err(|e| bad(format!("item key {shown:?}: {e}")))?;
            let obj = entry
                .as_object()
                .ok_or_else(|| bad(format!("item {shown:?} must be an object")))?;
            let options = match obj.get("options") {
                None | Some(Value::Null) => LineOptions::new(),
                Some(value) => serde_json::from_value::<LineOptions>(value.clone())
                    .map_err(|e| bad(format!("item {shown:?}: options: {e}")))?,
            };
            if LineKey::new(product.clone(), &options).to_string() != format!("{product}{digest}") {
                return Err(bad(format!(
                    "item {shown:?}: the key does not match the item's options"
                )));
            }
            if lines
                .iter()
                .any(|l: &Line| l.product == product && l.options == options)
            {
                return Err(bad(format!("item {shown:?} repeats product {product}")));
            }
            let quantity = obj
                .get("quantity")
                .ok_or_else(|| bad(format!("item {shown:?} has no quantity")))?
                .as_i64()
                .ok_or_else(|| bad(format!("item {shown:?}: quantity must be an integer")))?;
            if !(1..=QUANTITY_LIMIT).contains(&quantity) {
                return Err(CartError::InvalidQuantity(if quantity < 1 {
                    "Quantity must be at least 1.".into()
                } else {
                    format!("Quantity cannot exceed {QUANTITY_LIMIT}.")
                }));
            }
            let price = obj
                .get("unit_price")
                .ok_or_else(|| bad(format!("item {shown:?} has no unit_price")))?
                .as_str()
                .ok_or_else(|| {
                    bad(format!(
                        "item {shown:?}: unit_price must be a string such as \"9.99\""
                    ))
                })?;
            let unit_price = money::parse_price(price)?;
            if let Some(kind) = obj.get("kind") {
                if kind.as_str() != Some(product.kind()) {
                    return Err(bad(format!("item {shown:?}: kind does not match the key")));
                }
            }
            if let Some(id) = obj.get("id") {
                if id.as_i64() != Some(product.id()) {
                    return Err(bad(format!("item {shown:?}: id does not match the key")));
                }
            }
            let line = Line::new(product, quantity, unit_price).with_options(options);
            if let Some(total) = obj.get("total_price") {
                let total = total
                    .as_str()
                    .and_then(|t| t.parse::<rust_decimal::Decimal>().ok());
                if total != Some(line.total_price()) {
                    return Err(bad(format!(
                        "item {shown:?}: total_price is not quantity × unit_price"
                    )));
                }
            }
            lines.push(line);
        }
        Ok(CartPayload {
            lines,
            discount_code,
        })
    }
}

/// A line key, `"kind:id"` or `"kind:id:<digest>"`, with any id a [`ProductRef`] can hold
/// (0 to `i64::MAX`), so that every saved cart restores: `ProductRef::parse` stops at 18
/// digits. The product, and the `":<digest>"` suffix (empty for none).
fn parse_key(key: &str) -> Result<(ProductRef, String), CartError> {
    let mut parts = key.splitn(3, ':');
    let (kind, id, digest) = (parts.next(), parts.next(), parts.next());
    let suffix = digest.map(|d| format!(":{d}")).unwrap_or_default();
    if let (Some(kind), Some(id)) = (kind, id) {
        if id.len() == 19 && id.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = id.parse::<i64>() {
                return Ok((ProductRef::new(kind, id)?, suffix));
            }
        }
        return Ok((ProductRef::parse(&format!("{kind}:{id}"))?, suffix));
    }
    Ok((ProductRef::parse(key)?, suffix))
}

impl serde::Serialize for CartPayload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for CartPayload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        CartPayload::from_json(&value).map_err(serde::de::Error::custom)
    }
}

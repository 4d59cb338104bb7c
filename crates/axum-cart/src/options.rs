//! Line options: the size, grind or gift note that makes two lines of one product
//! different, the catalogue's word on which options a product takes, and the line key.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::error::CartError;
use crate::product::{Product, ProductRef};

/// The most options one line can carry.
pub const MAX_OPTIONS: usize = 10;
/// The longest option name, in characters.
pub const MAX_OPTION_NAME_LEN: usize = 40;
/// The longest option value, in characters.
pub const MAX_OPTION_VALUE_LEN: usize = 100;

/// The options of one line: a small map of names to values, e.g. `{"grind": "espresso"}`.
///
/// Names and values are trimmed; names are 1 to 40 characters of ASCII letters, digits,
/// `_` and `-`; values are 1 to 100 characters with no control characters (an empty
/// value is no option at all, as an empty form field is); at most 10 options. The same
/// options given in any order are the same line.
///
/// ```
/// use axum_cart::LineOptions;
/// let a = LineOptions::from_pairs([("grind", "espresso"), (" size ", "250g")]).unwrap();
/// let b = LineOptions::from_pairs([("size", "250g"), ("grind", "espresso")]).unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.get("size"), Some("250g"));
/// assert!(LineOptions::from_pairs([("bad name!", "x")]).is_err());
/// assert!(LineOptions::from_pairs([("size", "L"), ("size ", "M")]).is_err());
/// assert!(LineOptions::new().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineOptions(BTreeMap<String, String>);

impl LineOptions {
    /// No options.
    pub fn new() -> LineOptions {
        LineOptions::default()
    }

    /// Options from name/value pairs, checked and trimmed. A name given twice is refused.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<LineOptions, CartError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            let name = name.as_ref().trim();
            let value = value.as_ref().trim();
            check_name(name)?;
            if map.contains_key(name) {
                return Err(invalid(format!("Option {name:?} is given twice.")));
            }
            if value.is_empty() {
                continue;
            }
            check_value(name, value)?;
            map.insert(name.to_owned(), value.to_owned());
            if map.len() > MAX_OPTIONS {
                return Err(invalid(format!(
                    "A line can have at most {MAX_OPTIONS} options."
                )));
            }
        }
        Ok(LineOptions(map))
    }

    /// The value of option `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The options, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Checks these options against what `product` takes ([`Product::options`]): every
    /// name must be one of the product's options, every value one it allows, and every
    /// required option must be given. Returns what the options add to the unit price.
    ///
    /// ```
    /// use axum_cart::{LineOptions, Product, ProductOption};
    /// use rust_decimal::Decimal;
    ///
    /// struct Book;
    /// impl Product for Book {
    ///     fn kind(&self) -> &str { "book" }
    ///     fn id(&self) -> i64 { 1 }
    ///     fn options(&self) -> Vec<ProductOption> {
    ///         vec![ProductOption::choice("gift_wrap", ["yes"]).costing("yes", Decimal::new(200, 2))]
    ///     }
    /// }
    /// let wrapped = LineOptions::from_pairs([("gift_wrap", "yes")]).unwrap();
    /// assert_eq!(wrapped.check(&Book).unwrap(), Decimal::new(200, 2));
    /// assert_eq!(LineOptions::new().check(&Book).unwrap(), Decimal::ZERO);
    /// let err = LineOptions::from_pairs([("colour", "red")]).unwrap().check(&Book).unwrap_err();
    /// assert_eq!(err.to_string(), "Product book:1 has no option \"colour\"; its options are: gift_wrap.");
    /// ```
    pub fn check(&self, product: &dyn Product) -> Result<Decimal, CartError> {
        let specs = product.options();
        let shown = || format!("{}:{}", product.kind(), product.id());
        let mut extra = Decimal::ZERO;
        for (name, value) in self.iter() {
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(invalid(if names.is_empty() {
                    format!("Product {} takes no options.", shown())
                } else {
                    format!(
                        "Product {} has no option {name:?}; its options are: {}.",
                        shown(),
                        names.join(", ")
                    )
                }));
            };
            match &spec.values {
                Allowed::Text => {}
                Allowed::Values(values) => match values.iter().find(|(v, _)| v == value) {
                    Some((_, cost)) => {
                        extra = extra.checked_add(*cost).ok_or_else(|| {
                            invalid(format!("The options of {} cost too much.", shown()))
                        })?
                    }
                    None => {
                        let allowed: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
                        let value: String = value.chars().take(60).collect();
                        return Err(invalid(format!(
                            "Option {name:?} of product {} cannot be {value:?}; it can be: {}.",
                            shown(),
                            allowed.join(", ")
                        )));
                    }
                },
            }
        }
        if let Some(missing) = specs
            .iter()
            .find(|s| s.required && self.get(&s.name).is_none())
        {
            return Err(invalid(format!(
                "Product {} needs the option {:?}.",
                shown(),
                missing.name
            )));
        }
        Ok(extra)
    }

    /// The stored form: `""` for none, else the options as a JSON object, names sorted.
    pub(crate) fn to_db(&self) -> String {
        if self.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&self.0).unwrap_or_default()
        }
    }

    /// Reads the stored form back; `None` for text that is not valid options.
    pub(crate) fn from_db(text: &str) -> Option<LineOptions> {
        if text.is_empty() {
            return Some(LineOptions::new());
        }
        let map: BTreeMap<String, String> = serde_json::from_str(text).ok()?;
        let options = LineOptions::from_pairs(&map).ok()?;
        (options.len() == map.len()).then_some(options)
    }

    /// The stored key of these options: `""` for none, else 32 hex digits of the SHA-256
    /// of the stored form. The database's unique line key is (cart, kind, id, this).
    pub(crate) fn digest(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let hash = Sha256::digest(self.to_db().as_bytes());
        hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

fn invalid(message: String) -> CartError {
    CartError::InvalidOptions(message)
}

fn check_name(name: &str) -> Result<(), CartError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_OPTION_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(60).collect();
        Err(invalid(format!(
            "An option name is 1 to {MAX_OPTION_NAME_LEN} characters of letters, digits, '_' \
             and '-', got {shown:?}."
        )))
    }
}

fn check_value(name: &str, value: &str) -> Result<(), CartError> {
    if value.chars().count() > MAX_OPTION_VALUE_LEN {
        return Err(invalid(format!(
            "The value of option {name:?} is longer than {MAX_OPTION_VALUE_LEN} characters."
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "The value of option {name:?} contains a control character."
        )));
    }
    Ok(())
}

impl serde::Serialize for LineOptions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for LineOptions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        LineOptions::from_pairs(&map).map_err(serde::de::Error::custom)
    }
}

/// What values an option takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// One of these, each with what it adds to the unit price.
    Values(Vec<(String, Decimal)>),
    /// Any text within the bounds of [`LineOptions`] (a gift note).
    Text,
}

/// One option a product takes, as its [`Product::options`] declares it.
///
/// ```
/// use axum_cart::ProductOption;
/// use rust_decimal::Decimal;
/// let grind = ProductOption::choice("grind", ["whole", "espresso", "filter"]).required();
/// let wrap = ProductOption::choice("gift_wrap", ["yes"]).costing("yes", Decimal::new(200, 2));
/// let note = ProductOption::text("gift_note");
/// assert_eq!(grind.name(), "grind");
/// assert_eq!(wrap.extra("yes"), Some(Decimal::new(200, 2)));
/// assert_eq!(note.extra("Happy birthday!"), Some(Decimal::ZERO));
/// assert_eq!(grind.extra("instant"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductOption {
    name: String,
    values: Allowed,
    required: bool,
}

impl ProductOption {
    /// An option with a fixed set of values, none of which changes the price.
    pub fn choice<I, V>(name: impl Into<String>, values: I) -> ProductOption
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        ProductOption {
            name: name.into(),
            values: Allowed::Values(
                values
                    .into_iter()
                    .map(|v| (v.into(), Decimal::ZERO))
                    .collect(),
            ),
            required: false,
        }
    }

    /// An option whose value is free text (a gift note).
    pub fn text(name: impl Into<String>) -> ProductOption {
        ProductOption {
            name: name.into(),
            values: Allowed::Text,
            required: false,
        }
    }

    /// The value `value` adds `extra` to the unit price (it is added to the choices if it
    /// was not one). No effect on a text option.
    #[must_use]
    pub fn costing(mut self, value: impl Into<String>, extra: Decimal) -> ProductOption {
        if let Allowed::Values(values) = &mut self.values {
            let value = value.into();
            match values.iter_mut().find(|(v, _)| *v == value) {
                Some(entry) => entry.1 = extra,
                None => values.push((value, extra)),
            }
        }
        self
    }

    /// The option must be given on every add.
    #[must_use]
    pub fn required(mut self) -> ProductOption {
        self.required = true;
        self
    }

    /// The option's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it must be given.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The allowed values (empty for a text option).
    pub fn values(&self) -> Vec<&str> {
        match &self.values {
            Allowed::Values(values) => values.iter().map(|(v, _)| v.as_str()).collect(),
            Allowed::Text => Vec::new(),
        }
    }

    /// What `value` adds to the unit price; `None` if the option cannot take it.
    pub fn extra(&self, value: &str) -> Option<Decimal> {
        match &self.values {
            Allowed::Values(values) => values.iter().find(|(v, _)| v == value).map(|(_, e)| *e),
            Allowed::Text => Some(Decimal::ZERO),
        }
    }
}

/// The stable key of one line: its product and, if it has options, a digest of them.
/// `"book:42"` for a line with no options, `"coffee:3:<32 hex digits>"` with options. It is
/// what the JSON items carry as `line` and what `POST /cart/lines/{line}/update` takes.
///
/// ```
/// use axum_cart::{Line, LineKey, LineOptions, ProductRef};
/// use rust_decimal::Decimal;
/// let plain = Line::new(ProductRef::new("book", 42).unwrap(), 1, Decimal::ONE);
/// assert_eq!(plain.key().to_string(), "book:42");
/// let ground = plain.clone().with_options(LineOptions::from_pairs([("grind", "fine")]).unwrap());
/// let key = ground.key().to_string();
/// assert!(key.starts_with("book:42:") && key.len() == "book:42:".len() + 32);
/// assert_eq!(LineKey::parse(&key).unwrap(), ground.key());
/// assert!(LineKey::parse("book:42:xyz").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineKey {
    product: ProductRef,
    digest: String,
}

impl LineKey {
    /// The key of a line of `product` with `options`.
    pub fn new(product: ProductRef, options: &LineOptions) -> LineKey {
        LineKey {
            product,
            digest: options.digest(),
        }
    }

    /// The key of the line of `product` with no options.
    pub fn plain(product: ProductRef) -> LineKey {
        LineKey {
            product,
            digest: String::new(),
        }
    }

    /// The product of the line.
    pub fn product(&self) -> &ProductRef {
        &self.product
    }

    /// Whether the line has options.
    pub fn has_options(&self) -> bool {
        !self.digest.is_empty()
    }

    pub(crate) fn digest(&self) -> &str {
        &self.digest
    }

    /// Parses `"kind:id"` or `"kind:id:<32 hex digits>"`.
    pub fn parse(text: &str) -> Result<LineKey, CartError> {
        let bad = || {
            let shown: String = text.chars().take(80).collect();
            CartError::InvalidProduct(format!(
                "Expected a line key '<kind>:<id>' or '<kind>:<id>:<32 hex digits>', got {shown:?}."
            ))
        };
        let mut parts = text.splitn(3, ':');
        let (Some(kind), Some(id)) = (parts.next(), parts.next()) else {
            return Err(bad());
        };
        let product = ProductRef::parse(&format!("{kind}:{id}")).map_err(|_| bad())?;
        match parts.next() {
            None => Ok(LineKey::plain(product)),
            Some(digest)
                if digest.len() == 32
                    && digest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(LineKey {
                    product,
                    digest: digest.to_owned(),
                })
            }
            Some(_) => Err(bad()),
        }
    }
}

impl fmt::Display for LineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.digest.is_empty() {
            write!(f, "{}", self.product)
        } else {
            write!(f, "{}:{}", self.product, self.digest)
        }
    }
}

impl serde::Serialize for LineKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_round_trips_and_is_order_free() {
        let a = LineOptions::from_pairs([("b", "2"), ("a", " 1 ")]).unwrap();
        assert_eq!(a.to_db(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(LineOptions::from_db(&a.to_db()), Some(a.clone()));
        assert_eq!(LineOptions::from_db(""), Some(LineOptions::new()));
        assert_eq!(LineOptions::from_db("not json"), None);
        assert_eq!(LineOptions::from_db(r#"{"bad name":"x"}"#), None);
        assert_eq!(a.digest().len(), 32);
        assert_eq!(LineOptions::new().digest(), "");
        let b = LineOptions::from_pairs([("a", "1"), ("b", "3")]).unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn bounds() {
        let many: Vec<(String, String)> = (0..=MAX_OPTIONS)
            .map(|i| (format!("o{i}"), "v".to_owned()))
            .collect();
        let pairs = |n: usize| many.iter().take(n).map(|(a, b)| (a, b));
        assert!(LineOptions::from_pairs(pairs(MAX_OPTIONS + 1)).is_err());
        assert!(LineOptions::from_pairs(pairs(MAX_OPTIONS)).is_ok());
        assert!(LineOptions::from_pairs([("n".repeat(41), "v")]).is_err());
        assert!(LineOptions::from_pairs([("n", "é".repeat(100))]).is_ok());
        assert!(LineOptions::from_pairs([("n", "é".repeat(101))]).is_err());
        assert!(LineOptions::from_pairs([("n", "a\u{1e}b")]).is_err());
        assert!(LineOptions::from_pairs([("", "v")]).is_err());
        // An empty value is no option.
        assert!(LineOptions::from_pairs([("note", "  ")])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_fast_key_text_is_the_key() {
        let plain = crate::Line::new(ProductRef::new("book", 42).unwrap(), 1, Decimal::ONE);
        assert_eq!(plain.key_string(), plain.key().to_string());
        let ground = plain.with_options(LineOptions::from_pairs([("grind", "fine")]).unwrap());
        assert_eq!(ground.key_string(), ground.key().to_string());
    }

    #[test]
    fn keys_parse_only_what_they_print() {
        for bad in [
            "",
            "book",
            "book:x",
            "book:1:",
            "book:1:ABCDEF0123456789abcdef0123456789",
            "book:-1",
        ] {
            assert!(LineKey::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(LineKey::parse("book:1").unwrap().to_string(), "book:1");
    }
}

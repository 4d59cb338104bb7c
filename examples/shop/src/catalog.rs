//! The shop's catalogue: three product kinds, ids 1..=100 each, stored in `shop_products`
//! and kept in memory (as real shops cache product data), served to the cart through
//! `axum_cart::Catalog`.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum_cart::{async_trait, BoxError, Catalog, Product, ProductOption, QuantityRule};
use rust_decimal::Decimal;

use crate::db::{cents, Db};

/// The kinds the shop sells, in display order.
pub const KINDS: [&str; 3] = ["book", "coffee", "course"];

/// One product of the shop.
#[derive(Debug, Clone)]
pub struct ShopProduct {
    pub kind: &'static str,
    pub id: i64,
    pub name: String,
    pub price: Decimal,
    /// Whether the shop's quantity rule applies (`QUANTITY_RULES`): a course is bought at
    /// most once.
    pub rules: bool,
}

impl Product for ShopProduct {
    fn kind(&self) -> &str {
        self.kind
    }
    fn id(&self) -> i64 {
        self.id
    }
    fn price(&self) -> Option<Decimal> {
        Some(self.price)
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    /// Coffee comes whole or ground for espresso or filter; a book can be gift-wrapped
    /// for 2.00 more.
    fn options(&self) -> Vec<ProductOption> {
        match self.kind {
            "coffee" => vec![ProductOption::choice(
                "grind",
                ["whole", "espresso", "filter"],
            )],
            "book" => {
                vec![ProductOption::choice("gift_wrap", ["yes"])
                    .costing("yes", Decimal::new(200, 2))]
            }
            _ => Vec::new(),
        }
    }
    fn quantity_rule(&self) -> QuantityRule {
        match (self.rules, self.kind) {
            (true, "course") => QuantityRule::new().max(1),
            _ => QuantityRule::new(),
        }
    }
}

/// Products by kind and id.
type ByKey = HashMap<(&'static str, i64), Arc<ShopProduct>>;
/// Products of each kind, by id.
type ByKind = HashMap<&'static str, Vec<Arc<ShopProduct>>>;

/// The catalogue, in memory (this process's copy: [`set_price`](Self::set_price) changes it).
#[derive(Clone, Default)]
pub struct ShopCatalog {
    by_key: Arc<RwLock<ByKey>>,
    by_kind: Arc<RwLock<ByKind>>,
}

impl ShopCatalog {
    /// Loads the catalogue, seeding it on first start with `per_kind` products of each kind.
    /// The seed is one transaction that inserts only into an empty table, so the catalogue
    /// read here is always whole, even while other processes start on the same database.
    pub async fn load(db: &Db, per_kind: i64, rules: bool) -> Result<ShopCatalog, sqlx::Error> {
        let mut rows = db.products().await?;
        if rows.is_empty() {
            seed(db, per_kind).await?;
            rows = db.products().await?;
        }
        let mut by_key = HashMap::new();
        let mut by_kind: HashMap<&'static str, Vec<Arc<ShopProduct>>> = HashMap::new();
        for (kind, id, name, price) in rows {
            let Some(kind) = KINDS.iter().copied().find(|k| *k == kind) else {
                continue;
            };
            let p = Arc::new(ShopProduct {
                kind,
                id,
                name,
                price,
                rules,
            });
            by_key.insert((kind, id), p.clone());
            by_kind.entry(kind).or_default().push(p);
        }
        Ok(ShopCatalog {
            by_key: Arc::new(RwLock::new(by_key)),
            by_kind: Arc::new(RwLock::new(by_kind)),
        })
    }

    /// The products of one kind, by id.
    pub fn of_kind(&self, kind: &str) -> Vec<Arc<ShopProduct>> {
        let by_kind = self.by_kind.read().unwrap_or_else(PoisonError::into_inner);
        by_kind.get(kind).cloned().unwrap_or_default()
    }

    /// One product.
    pub fn get(&self, kind: &str, id: i64) -> Option<Arc<ShopProduct>> {
        let kind = KINDS.iter().copied().find(|k| *k == kind)?;
        let by_key = self.by_key.read().unwrap_or_else(PoisonError::into_inner);
        by_key.get(&(kind, id)).cloned()
    }

    /// Gives one product a new price in memory (the caller stores it); `None` if there is
    /// no such product.
    pub fn set_price(&self, kind: &str, id: i64, price: Decimal) -> Option<Arc<ShopProduct>> {
        let kind = KINDS.iter().copied().find(|k| *k == kind)?;
        let mut by_key = self.by_key.write().unwrap_or_else(PoisonError::into_inner);
        let old = by_key.get(&(kind, id))?;
        let new = Arc::new(ShopProduct {
            price,
            ..ShopProduct::clone(old)
        });
        by_key.insert((kind, id), new.clone());
        let mut by_kind = self.by_kind.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = by_kind
            .get_mut(kind)
            .and_then(|list| list.iter_mut().find(|p| p.id == id))
        {
            *slot = new.clone();
        }
        Some(new)
    }
}

#[async_trait]
impl Catalog for ShopCatalog {
    async fn products(&self, kind: &str, ids: &[i64]) -> Result<Vec<Arc<dyn Product>>, BoxError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.get(kind, *id))
            .map(|p| p.clone() as Arc<dyn Product>)
            .collect())
    }
}

const BOOK_WORDS: [&str; 10] = [
    "Ownership",
    "Lifetimes",
    "Traits",
    "Async",
    "Macros",
    "Iterators",
    "Errors",
    "Unsafe",
    "Generics",
    "Patterns",
];
const COFFEE_ORIGINS: [&str; 10] = [
    "Ethiopia",
    "Colombia",
    "Kenya",
    "Guatemala",
    "Brazil",
    "Sumatra",
    "Costa Rica",
    "Rwanda",
    "Peru",
    "Yemen",
];
const COFFEE_ROASTS: [&str; 4] = ["Light", "Medium", "Dark", "Espresso"];
const COURSE_TOPICS: [&str; 10] = [
    "Axum", "SQLx", "Tokio", "Tower", "Serde", "Askama", "Testing", "Tracing", "Clippy", "Cargo",
];

/// The catalogue of a new shop: deterministic names and prices.
fn seed_rows(per_kind: i64) -> Vec<(&'static str, i64, String, Decimal)> {
    let mut rows = Vec::new();
    for id in 1..=per_kind {
        let i = id as usize;
        rows.push((
            "book",
            id,
            format!("{} in Practice, vol. {}", BOOK_WORDS[i % 10], id),
            Decimal::new(999 + (id * 137 % 40) * 100, 2),
        ));
        rows.push((
            "coffee",
            id,
            format!(
                "{} {} Roast #{}",
                COFFEE_ORIGINS[i % 10],
                COFFEE_ROASTS[i % 4],
                id
            ),
            Decimal::new(1250 + (id * 53 % 12) * 100, 2),
        ));
        rows.push((
            "course",
            id,
            format!("{} Masterclass, part {}", COURSE_TOPICS[i % 10], id),
            Decimal::new(4900 + (id * 29 % 10) * 1000, 2),
        ));
    }
    rows
}

async fn seed(db: &Db, per_kind: i64) -> Result<(), sqlx::Error> {
    let rows: Vec<(&str, i64, String, i64)> = seed_rows(per_kind)
        .into_iter()
        .map(|(kind, id, name, price)| (kind, id, name, cents(price)))
        .collect();
    let inserted = db.seed_products(&rows).await?;
    if inserted > 0 {
        tracing::info!(products = inserted, "seeded the catalogue");
    }
    Ok(())
}

//! Reads: lines, counts, money figures, checkout readiness.

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::checkout::checkout_rules;
use super::Cart;

use crate::error::CartError;
use crate::money;
use crate::options::LineKey;
use crate::product::{product_ref, Product, ProductRef};
use crate::shipping::ShippingOption;
use crate::store::{CartRecord, Snapshot};
use crate::types::{subtotal, CartView, Line, LoadedLine, Totals};

impl Cart {
    // ---- reads -------------------------------------------------------------------------

    /// The lines, in the order they were first added.
    pub async fn lines(&self) -> Result<Vec<Line>, CartError> {
        Ok(self.snapshot().await?.lines.clone())
    }

    /// The product's line with no options, if it is in the cart. (A line with options is
    /// found among [`lines`](Self::lines), by its [`Line::key`].)
    pub async fn line(&self, product: &(impl Product + ?Sized)) -> Result<Option<Line>, CartError> {
        let key = LineKey::plain(product_ref(product)?);
        Ok(self.snapshot().await?.line(&key).cloned())
    }

    /// Total units: the sum of the line quantities.
    pub async fn count(&self) -> Result<i64, CartError> {
        Ok(self
            .snapshot()
            .await?
            .lines
            .iter()
            .map(|l| l.quantity)
            .sum())
    }

    /// Distinct lines (the same product with other options is another line).
    pub async fn unique_count(&self) -> Result<usize, CartError> {
        Ok(self.snapshot().await?.lines.len())
    }

    /// Whether the cart has no lines.
    pub async fn is_empty(&self) -> Result<bool, CartError> {
        Ok(self.snapshot().await?.lines.is_empty())
    }

    /// Whether the product is in the cart, with or without options.
    pub async fn contains(&self, product: &(impl Product + ?Sized)) -> Result<bool, CartError> {
        let p = product_ref(product)?;
        Ok(self.snapshot().await?.lines.iter().any(|l| l.product == p))
    }

    /// Whether the cart has been checked out.
    pub async fn is_checked_out(&self) -> Result<bool, CartError> {
        Ok(self.snapshot().await?.checked_out)
    }

    /// The cart row as an admin page lists it; `None` while the cart has no row.
    pub async fn record(&self) -> Result<Option<CartRecord>, CartError> {
        let snap = self.snapshot().await?;
        Ok(self.binding().id().map(|_| snap.record()))
    }

    /// The user the cart is bound to.
    pub async fn user_id(&self) -> Result<Option<String>, CartError> {
        Ok(self.snapshot().await?.user_id.clone())
    }

    /// The lines with their products, loaded with one catalogue call per product kind.
    /// A product the catalogue no longer has is `None` on its line, not an error.
    pub async fn items_with_products(&self) -> Result<Vec<crate::LoadedLine>, CartError> {
        let snap = self.snapshot().await?;
        let refs: Vec<ProductRef> = snap.lines.iter().map(|l| l.product.clone()).collect();
        let products = self.catalog_products(&refs).await?;
        Ok(snap
            .lines
            .iter()
            .zip(products)
            .map(|(l, product)| LoadedLine {
                line: l.clone(),
                product,
            })
            .collect())
    }

    /// Σ quantity × unit_price, exactly two decimal places (`"0.00"` when empty).
    pub async fn summary(&self) -> Result<Decimal, CartError> {
        Ok(subtotal(&self.snapshot().await?.lines))
    }

    /// The applied discount code, if any.
    pub async fn discount_code(&self) -> Result<Option<String>, CartError> {
        Ok(self
            .snapshot()
            .await?
            .discount
            .as_ref()
            .map(|d| d.code.clone()))
    }

    /// What the applied discount takes off: 0.00 with none, and 0.00 once it is no longer
    /// valid (expired, switched off, used up, or the cart fell below its minimum).
    pub async fn discount_amount(&self) -> Result<Decimal, CartError> {
        let snap = self.snapshot().await?;
        Ok(discount_amount(&snap, subtotal(&snap.lines)))
    }

    /// The tax from the configured calculator, half-up to cents. Computed once per value.
    pub async fn tax(&self) -> Result<Decimal, CartError> {
        let snap = self.snapshot().await?;
        if let Some(tax) = self.lock().tax {
            return Ok(tax);
        }
        let tax = self.tax_of(&self.view(&snap)).await?;
        self.lock().tax = Some(tax);
        Ok(tax)
    }

    /// The shipping from the configured calculator, half-up to cents. Computed once per value.
    pub async fn shipping(&self) -> Result<Decimal, CartError> {
        let snap = self.snapshot().await?;
        if let Some(shipping) = self.lock().shipping {
            return Ok(shipping);
        }
        let shipping = self.shipping_of(&self.view(&snap)).await?;
        self.lock().shipping = Some(shipping);
        Ok(shipping)
    }

    /// The tax and shipping of `snap` (a cart as it is about to be checked out), half-up
    /// to cents; not cached.
    pub(super) async fn figures(&self, snap: &Snapshot) -> Result<(Decimal, Decimal), CartError> {
        let view = self.view(snap);
        Ok((self.tax_of(&view).await?, self.shipping_of(&view).await?))
    }

    /// The configured tax calculator's answer for `view`, half-up to cents.
    async fn tax_of(&self, view: &CartView) -> Result<Decimal, CartError> {
        let tax = self
            .config()
            .tax
            .calculate(view)
            .await
            .map_err(|e| CartError::plugin("tax calculator", e))?;
        Ok(money::cents(tax))
    }

    /// The configured shipping calculator's answer for `view`, half-up to cents.
    async fn shipping_of(&self, view: &CartView) -> Result<Decimal, CartError> {
        let shipping = self
            .config()
            .shipping
            .calculate(view)
            .await
            .map_err(|e| CartError::plugin("shipping calculator", e))?;
        Ok(money::cents(shipping))
    }

    /// The shipping choices of the configured calculator (not cached).
    pub async fn shipping_options(&self) -> Result<Vec<ShippingOption>, CartError> {
        let view = self.view(&*self.snapshot().await?);
        self.config()
            .shipping
            .options(&view)
            .await
            .map_err(|e| CartError::plugin("shipping calculator", e))
    }

    /// summary − discount + tax + shipping, never below 0.00, half-up to cents.
    pub async fn total(&self) -> Result<Decimal, CartError> {
        Ok(self.totals().await?.total)
    }

    /// Every figure at once.
    pub async fn totals(&self) -> Result<Totals, CartError> {
        let snap = self.snapshot().await?;
        let tax = self.tax().await?;
        let shipping = self.shipping().await?;
        Ok(totals(&snap, tax, shipping))
    }

    /// Whether `checkout` would go through, judged on what this value has read: `Ok(())`,
    /// or the error checkout would return (empty, below the minimum, discount invalid).
    pub async fn can_checkout(&self) -> Result<(), CartError> {
        let snap = self.snapshot().await?;
        checkout_rules(
            &snap,
            self.config().min_order_amount,
            OffsetDateTime::now_utc(),
        )
        .map(|_| ())
    }
}

pub(super) fn discount_amount(snap: &Snapshot, subtotal: Decimal) -> Decimal {
    match &snap.discount {
        // A placed order keeps the discount it was checked out with, even once the code
        // is used up or expired.
        Some(d) if snap.checked_out || d.check(subtotal, OffsetDateTime::now_utc()).is_ok() => {
            d.amount(subtotal)
        }
        _ => money::cents(Decimal::ZERO),
    }
}

pub(super) fn totals(snap: &Snapshot, tax: Decimal, shipping: Decimal) -> Totals {
    let sub = subtotal(&snap.lines);
    let discount = discount_amount(snap, sub);
    Totals {
        count: snap.lines.iter().map(|l| l.quantity).sum(),
        unique_count: snap.lines.len(),
        subtotal: sub,
        discount_code: snap.discount.as_ref().map(|d| d.code.clone()),
        discount,
        tax,
        shipping,
        total: money::cents((sub - discount + tax + shipping).max(Decimal::ZERO)),
        checked_out: snap.checked_out,
    }
}

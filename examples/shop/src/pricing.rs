//! The shop's pricing plug-ins, written the way the seed's examples are: 8% tax, shipping free
//! from a 100.00 subtotal (else 9.99, and nothing for an empty cart), express 19.99.

use axum_cart::{
    async_trait, BoxError, CartView, ShippingCalculator, ShippingOption, TaxCalculator,
};
use rust_decimal::{Decimal, RoundingStrategy};

/// 8% of the subtotal, half-up to cents.
pub struct EightPercentTax;

#[async_trait]
impl TaxCalculator for EightPercentTax {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        Ok((cart.subtotal() * Decimal::new(8, 2))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
    }
}

/// Free from 100.00, else 9.99; 0.00 for an empty cart.
pub struct FlatRateShipping;

impl FlatRateShipping {
    fn standard(cart: &CartView) -> Decimal {
        if cart.lines().is_empty() || cart.subtotal() >= Decimal::ONE_HUNDRED {
            Decimal::ZERO
        } else {
            Decimal::new(999, 2)
        }
    }
}

#[async_trait]
impl ShippingCalculator for FlatRateShipping {
    async fn calculate(&self, cart: &CartView) -> Result<Decimal, BoxError> {
        Ok(Self::standard(cart))
    }
    async fn options(&self, cart: &CartView) -> Result<Vec<ShippingOption>, BoxError> {
        Ok(vec![
            ShippingOption::new("standard", "Standard (3–5 days)", Self::standard(cart)),
            ShippingOption::new("express", "Express (next-day)", Decimal::new(1999, 2)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum_cart::{Line, ProductRef};

    fn view(price: &str, qty: i64) -> CartView {
        let line = Line::new(
            ProductRef::new("book", 1).unwrap(),
            qty,
            price.parse().unwrap(),
        );
        CartView::from_lines(vec![line])
    }

    #[tokio::test]
    async fn tax_is_eight_percent_half_up() {
        assert_eq!(
            EightPercentTax
                .calculate(&view("12.34", 1))
                .await
                .unwrap()
                .to_string(),
            "0.99"
        );
        assert_eq!(
            EightPercentTax
                .calculate(&view("10.00", 2))
                .await
                .unwrap()
                .to_string(),
            "1.60"
        );
    }

    #[tokio::test]
    async fn shipping_free_from_100_and_for_empty_carts() {
        assert_eq!(
            FlatRateShipping
                .calculate(&view("99.99", 1))
                .await
                .unwrap()
                .to_string(),
            "9.99"
        );
        assert_eq!(
            FlatRateShipping
                .calculate(&view("100.00", 1))
                .await
                .unwrap()
                .to_string(),
            "0"
        );
        assert_eq!(
            FlatRateShipping
                .calculate(&CartView::from_lines(vec![]))
                .await
                .unwrap()
                .to_string(),
            "0"
        );
        let options = FlatRateShipping.options(&view("10.00", 1)).await.unwrap();
        assert_eq!(options.len(), 2);
        assert_eq!(options[1].price.to_string(), "19.99");
    }
}

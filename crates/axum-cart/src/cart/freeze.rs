//! Freeze before payment: a frozen cart keeps its lines, discount and prices.

use super::binding::{Decision, Lock};
use super::{ensure_open, Binding, Cart};

use crate::error::CartError;
use crate::store::{now_epoch, Write};

impl Cart {
    /// Freezes the cart while its payment runs: until [`unfreeze`](Self::unfreeze), the
    /// checkout, or the end of [`CartsBuilder::freeze_timeout`](crate::CartsBuilder::freeze_timeout)
    /// (15 minutes by default), every change to its lines or discount is refused with
    /// [`CartError::CartFrozen`] (409 `cart_frozen` over HTTP), from any request or process,
    /// and the checkout takes the prices the lines hold, whatever the catalogue says now.
    /// Freezing a frozen cart starts its time again. An empty cart is refused
    /// ([`CartError::EmptyCart`]), a checked-out one too ([`CartError::CheckedOut`]).
    ///
    /// ```
    /// # async fn demo(mut cart: axum_cart::Cart) -> Result<(), axum_cart::CartError> {
    /// cart.freeze().await?;
    /// // … take the payment at `cart.total()` …
    /// cart.checkout().await?;
    /// # Ok(()) }
    /// ```
    pub async fn freeze(&mut self) -> Result<(), CartError> {
        if let Binding::Unverified(_) = self.binding() {
            self.snapshot().await?;
        }
        if self.binding() == Binding::None {
            self.precondition().await?;
            return Err(CartError::EmptyCart);
        }
        let timeout = self.config().freeze_timeout.whole_seconds().max(1);
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_open(t)?;
            if t.lines.is_empty() {
                return Err(CartError::EmptyCart);
            }
            let until = now_epoch().saturating_add(timeout);
            Ok(Decision::writes(vec![Write::Freeze {
                cart: t.id,
                until: Some(until),
            }]))
        })
        .await?;
        Ok(())
    }

    /// Ends the cart's freeze (a payment that failed or was cancelled): its lines and
    /// discount can change again. A cart that is not frozen is left as it is.
    pub async fn unfreeze(&mut self) -> Result<(), CartError> {
        if let Binding::Unverified(_) = self.binding() {
            self.snapshot().await?;
        }
        if self.binding() == Binding::None {
            return self.precondition().await;
        }
        self.locked(Lock::CART, |locked| {
            let t = &locked.target;
            ensure_open(t)?;
            if t.frozen_until.is_none() {
                return Ok(Decision::nothing());
            }
            Ok(Decision::writes(vec![Write::Freeze {
                cart: t.id,
                until: None,
            }]))
        })
        .await?;
        Ok(())
    }

    /// Whether the cart is frozen now (a freeze that has not expired).
    pub async fn is_frozen(&self) -> Result<bool, CartError> {
        Ok(self.snapshot().await?.is_frozen())
    }
}

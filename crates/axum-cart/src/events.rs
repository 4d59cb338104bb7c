//! Events: what happened to a cart, delivered to subscribers after the change has committed.
//!
//! The counterpart of django-cart's signals. Subscribe with
//! [`Carts::subscribe`](crate::Carts::subscribe); every receiver gets every event sent after
//! it subscribed. Events are sent only after the database has committed, so a slow or
//! failing subscriber can never undo or corrupt a change. A receiver that falls more than
//! the channel capacity behind gets `RecvError::Lagged` and misses the oldest events.

use crate::options::LineOptions;
use crate::product::ProductRef;
use crate::types::{CartId, Line};

/// Something that happened to a cart.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CartEvent {
    /// A line was added or increased by `add`, `add_bulk`, `merge` or `from_serializable`.
    ItemAdded {
        /// The cart.
        cart_id: CartId,
        /// The line as it is now.
        line: Line,
    },
    /// A line was changed by `update` (or by `merge` into an existing line).
    ItemUpdated {
        /// The cart.
        cart_id: CartId,
        /// The line as it is now (its last state when deleted).
        line: Line,
        /// `true` when `update` to quantity 0 deleted the line.
        deleted: bool,
    },
    /// A line was removed by `remove`.
    ItemRemoved {
        /// The cart.
        cart_id: CartId,
        /// The product whose line was removed.
        product: ProductRef,
        /// The removed line's options.
        options: LineOptions,
    },
    /// All lines were removed by `clear` (or moved out by `merge`).
    Cleared {
        /// The cart.
        cart_id: CartId,
    },
    /// The cart was checked out. Sent exactly once per cart.
    CheckedOut {
        /// The cart.
        cart_id: CartId,
    },
    /// A discount code was applied by `apply_discount` (or replaced the cart's code).
    DiscountApplied {
        /// The cart.
        cart_id: CartId,
        /// The code, as stored.
        code: String,
    },
    /// The discount code was removed by `remove_discount`.
    DiscountRemoved {
        /// The cart.
        cart_id: CartId,
        /// The code that was removed.
        code: String,
    },
    /// Other carts were merged into this one by `merge` or `login` (their lines came with
    /// their own `ItemAdded` / `ItemUpdated` events).
    Merged {
        /// The cart merged into.
        cart_id: CartId,
        /// The carts merged in (gone now).
        from: Vec<CartId>,
    },
}

-- Last activity is kept to the minute: a line write updates the cart row (and its
-- (checked_out, updated_at) index) only when the stored time is more than 60 s old. On
-- SQLite every write is serialised, so this halves the pages a repeated add dirties. The
-- checked-out guard is unchanged.
DROP TRIGGER cart_items_guard_insert;
DROP TRIGGER cart_items_guard_update;

CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: cart is checked out')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id AND checked_out = 1);
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER)
    WHERE id = NEW.cart_id AND updated_at < CAST(strftime('%s', 'now') AS INTEGER) - 60;
END;

CREATE TRIGGER cart_items_guard_update BEFORE UPDATE ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: cart is checked out')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id AND checked_out = 1);
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER)
    WHERE id = NEW.cart_id AND updated_at < CAST(strftime('%s', 'now') AS INTEGER) - 60;
END;

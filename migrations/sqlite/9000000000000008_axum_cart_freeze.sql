-- A cart can be frozen while its payment runs: until `frozen_until` (Unix seconds) its
-- lines and discount cannot change.
ALTER TABLE cart_carts ADD COLUMN frozen_until INTEGER;

-- The add's own guard, as on PostgreSQL and MySQL: a line write to a frozen cart, and a new
-- line in a cart that has its most lines, are refused here (SQLite's writes are serialised,
-- so the count is exact). `add` gives the cart's most lines in `max_lines`; SQLite cannot
-- change NEW in a trigger, so the row keeps the limit it was added under (nothing reads
-- it). The three refusals share SQLite's one trigger code; the store tells them apart by
-- reading the cart after a refused add.
ALTER TABLE cart_items ADD COLUMN max_lines INTEGER;

DROP TRIGGER cart_items_guard_insert;
DROP TRIGGER cart_items_guard_update;

CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: cart is checked out')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id AND checked_out = 1);
    SELECT RAISE(ABORT, 'axum_cart: cart is frozen')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id
                  AND frozen_until > CAST(strftime('%s', 'now') AS INTEGER));
    SELECT RAISE(ABORT, 'axum_cart: the cart has its most lines')
    WHERE NEW.max_lines IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = NEW.cart_id
                      AND product_kind = NEW.product_kind AND product_id = NEW.product_id
                      AND options_key = NEW.options_key)
      AND (SELECT COUNT(*) FROM cart_items WHERE cart_id = NEW.cart_id) >= NEW.max_lines;
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER)
    WHERE id = NEW.cart_id AND updated_at < CAST(strftime('%s', 'now') AS INTEGER) - 60;
END;

CREATE TRIGGER cart_items_guard_update BEFORE UPDATE ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: cart is checked out')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id AND checked_out = 1);
    SELECT RAISE(ABORT, 'axum_cart: cart is frozen')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id
                  AND frozen_until > CAST(strftime('%s', 'now') AS INTEGER));
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER)
    WHERE id = NEW.cart_id AND updated_at < CAST(strftime('%s', 'now') AS INTEGER) - 60;
END;

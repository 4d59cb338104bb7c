-- Every cart has a version that every committed change adds 1 to (issue 13): the ETag of
-- the cart routes, and what `Cart::if_version` / `If-Match` compare. A row starts at 0
-- when it is created (the store inserts 0: an empty cart nothing has changed yet); carts
-- that existed before this migration start at 1, so version 0 always means "never
-- changed" (and an empty cart).
ALTER TABLE cart_carts ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- The locked writes add 1 in the statement that marks the cart active (one per
-- transaction, whatever it wrote). `add` is one statement of its own: the guard adds 1
-- when the row is an add's (the add gives `max_lines`; the locked writes do not), before
-- the insert or the update of the line, and an add that is refused (a guard, or past the
-- line's maximum, which the add turns into a CHECK failure) rolls it back with the rest
-- of the statement. Otherwise the guard is that of 9000000000000008.
DROP TRIGGER cart_items_guard_insert;

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
    UPDATE cart_carts SET version = version + 1
    WHERE id = NEW.cart_id AND NEW.max_lines IS NOT NULL;
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER)
    WHERE id = NEW.cart_id AND updated_at < CAST(strftime('%s', 'now') AS INTEGER) - 60;
END;

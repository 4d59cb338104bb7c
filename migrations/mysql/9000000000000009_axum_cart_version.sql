-- Every cart has a version that every committed change adds 1 to (issue 13): the ETag of
-- the cart routes, and what `Cart::if_version` / `If-Match` compare. A row starts at 0
-- when it is created (an empty cart nothing has changed yet); carts that existed before
-- this migration start at 1 (the column is added with default 1, then the default becomes
-- 0), so version 0 always means "never changed".
ALTER TABLE cart_carts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE cart_carts ALTER COLUMN version SET DEFAULT 0;

-- The locked writes add 1 in the statement that marks the cart active (one per
-- transaction, whatever it wrote). `add` is one statement of its own: the insert guard
-- adds 1 when the row is an add's (the add gives `max_lines`; the locked writes do not),
-- in the UPDATE it already makes of the cart row; an add that is refused (a guard, or past
-- the line's maximum, which the add turns into a CHECK failure) rolls it back with the
-- rest of the statement. Otherwise the guard is that of 9000000000000008.
DROP TRIGGER cart_items_guard_insert;

CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    DECLARE lines_now INT DEFAULT 0;
    DECLARE frozen BIGINT DEFAULT NULL;
    DECLARE bump INT DEFAULT 0;
    SELECT checked_out, line_count, frozen_until INTO closed, lines_now, frozen FROM cart_carts
    WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE 'AXC01' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    IF frozen > UNIX_TIMESTAMP() THEN
        SIGNAL SQLSTATE 'AXC04' SET MESSAGE_TEXT = 'axum_cart: cart is frozen';
    END IF;
    IF NEW.max_lines IS NOT NULL THEN
        SET bump = 1;
        IF lines_now >= NEW.max_lines THEN
            IF NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = NEW.cart_id
                           AND product_kind = NEW.product_kind AND product_id = NEW.product_id
                           AND options_key = NEW.options_key) THEN
                SIGNAL SQLSTATE 'AXC03' SET MESSAGE_TEXT = 'axum_cart: the cart has its most lines';
            END IF;
        END IF;
        SET NEW.max_lines = NULL;
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP(), version = version + bump
    WHERE id = NEW.cart_id;
END;

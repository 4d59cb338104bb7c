-- A cart can be frozen while its payment runs: until `frozen_until` (Unix seconds) its
-- lines cannot change. The guards refuse a line write to a frozen cart with SQLSTATE AXC04,
-- under the cart row's lock, so an add racing a freeze is either before it or refused.
ALTER TABLE cart_carts ADD COLUMN frozen_until BIGINT NULL;

DROP TRIGGER cart_items_guard_insert;
DROP TRIGGER cart_items_guard_update;

CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    DECLARE lines_now INT DEFAULT 0;
    DECLARE frozen BIGINT DEFAULT NULL;
    SELECT checked_out, line_count, frozen_until INTO closed, lines_now, frozen FROM cart_carts
    WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE 'AXC01' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    IF frozen > UNIX_TIMESTAMP() THEN
        SIGNAL SQLSTATE 'AXC04' SET MESSAGE_TEXT = 'axum_cart: cart is frozen';
    END IF;
    IF NEW.max_lines IS NOT NULL THEN
        IF lines_now >= NEW.max_lines THEN
            IF NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = NEW.cart_id
                           AND product_kind = NEW.product_kind AND product_id = NEW.product_id
                           AND options_key = NEW.options_key) THEN
                SIGNAL SQLSTATE 'AXC03' SET MESSAGE_TEXT = 'axum_cart: the cart has its most lines';
            END IF;
        END IF;
        SET NEW.max_lines = NULL;
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP() WHERE id = NEW.cart_id;
END;

CREATE TRIGGER cart_items_guard_update BEFORE UPDATE ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    DECLARE frozen BIGINT DEFAULT NULL;
    SELECT checked_out, frozen_until INTO closed, frozen FROM cart_carts
    WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE 'AXC01' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    IF frozen > UNIX_TIMESTAMP() THEN
        SIGNAL SQLSTATE 'AXC04' SET MESSAGE_TEXT = 'axum_cart: cart is frozen';
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP() WHERE id = NEW.cart_id;
END;

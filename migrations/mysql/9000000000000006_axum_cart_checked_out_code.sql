-- The guard against writing a line of a checked-out cart signals its own SQLSTATE, AXC01
-- (class AX: axum-cart), so the store recognises it by code: before, it signalled the
-- generic 45000, as the product kind's triggers do. Otherwise unchanged.
DROP TRIGGER cart_items_guard_insert;
DROP TRIGGER cart_items_guard_update;

CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    SELECT checked_out INTO closed FROM cart_carts WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE 'AXC01' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP() WHERE id = NEW.cart_id;
END;

CREATE TRIGGER cart_items_guard_update BEFORE UPDATE ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    SELECT checked_out INTO closed FROM cart_carts WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE 'AXC01' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP() WHERE id = NEW.cart_id;
END;

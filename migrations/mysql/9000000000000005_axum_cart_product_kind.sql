-- A product kind is 1 to 50 characters of a-z, 0-9, '_', '-' and '.' (`ProductRef::new`);
-- the schema refuses anything else. Triggers rather than a CHECK constraint, so rows written
-- before this stay: the cart skips (and logs) them instead of failing to read the cart.
CREATE TRIGGER cart_items_kind_insert BEFORE INSERT ON cart_items FOR EACH ROW
BEGIN
    IF NOT (NEW.product_kind REGEXP '^[a-z0-9_.-]{1,50}$') THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'axum_cart: invalid product kind';
    END IF;
END;

CREATE TRIGGER cart_items_kind_update BEFORE UPDATE ON cart_items FOR EACH ROW
BEGIN
    IF NOT (NEW.product_kind REGEXP '^[a-z0-9_.-]{1,50}$') THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'axum_cart: invalid product kind';
    END IF;
END;

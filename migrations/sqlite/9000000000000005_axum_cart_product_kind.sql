-- A product kind is 1 to 50 characters of a-z, 0-9, '_', '-' and '.' (`ProductRef::new`);
-- the schema refuses anything else. Triggers (SQLite cannot add a CHECK to a table), so
-- rows written before this stay: the cart skips (and logs) them instead of failing.
CREATE TRIGGER cart_items_kind_insert BEFORE INSERT ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: invalid product kind')
    WHERE length(NEW.product_kind) NOT BETWEEN 1 AND 50
       OR NEW.product_kind GLOB '*[^a-z0-9_.-]*';
END;

CREATE TRIGGER cart_items_kind_update BEFORE UPDATE OF product_kind ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: invalid product kind')
    WHERE length(NEW.product_kind) NOT BETWEEN 1 AND 50
       OR NEW.product_kind GLOB '*[^a-z0-9_.-]*';
END;

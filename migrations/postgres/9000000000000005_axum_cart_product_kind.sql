-- A product kind is 1 to 50 characters of a-z, 0-9, '_', '-' and '.' (`ProductRef::new`);
-- the schema refuses anything else. NOT VALID: rows written before this stay, and the cart
-- skips (and logs) them instead of failing to read the cart.
ALTER TABLE cart_items ADD CONSTRAINT cart_items_kind_format
    CHECK (product_kind ~ '^[a-z0-9_.-]{1,50}$') NOT VALID;

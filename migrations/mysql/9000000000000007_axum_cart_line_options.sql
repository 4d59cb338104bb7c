-- A line is (product kind, product id, options): the same product in two sizes is two
-- lines. `options` holds the line's options as a JSON object with sorted names ('' for
-- none) and `options_key` 32 hex digits of its SHA-256 ('' for none); the unique line key
-- takes the options key in. The new key is added before the old one is dropped: the
-- foreign key on cart_id needs an index that starts with it at every moment.
ALTER TABLE cart_items
    ADD COLUMN options VARCHAR(2000) NOT NULL DEFAULT '',
    ADD COLUMN options_key VARCHAR(32) NOT NULL DEFAULT '',
    ADD CONSTRAINT cart_items_options_key CHECK (CHAR_LENGTH(options_key) IN (0, 32)),
    ADD CONSTRAINT cart_items_options_pair CHECK ((options = '') = (options_key = ''));
ALTER TABLE cart_items ADD CONSTRAINT cart_items_line_options
    UNIQUE (cart_id, product_kind, product_id, options_key);
ALTER TABLE cart_items DROP INDEX cart_items_line;

-- The most lines of a cart, enforced where the cart row is locked: `add` gives its limit in
-- `max_lines` (never stored: the guard reads it and sets it to NULL), and a new line in a
-- cart that already has that many is refused with SQLSTATE AXC03. The cart row counts its
-- lines (`line_count`, kept by the triggers below), so the guard reads no line unless the
-- cart is full: reading a cart's lines here would take InnoDB's gap locks, which reach into
-- the next cart's lines and deadlock with writes to it. Writes that give no limit (the
-- locked writes, which check it themselves) are not limited here.
ALTER TABLE cart_items ADD COLUMN max_lines INT NULL;
ALTER TABLE cart_carts ADD COLUMN line_count INT NOT NULL DEFAULT 0;
UPDATE cart_carts c SET line_count = (SELECT COUNT(*) FROM cart_items i WHERE i.cart_id = c.id);

DROP TRIGGER cart_items_guard_insert;

CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    DECLARE lines_now INT DEFAULT 0;
    SELECT checked_out, line_count INTO closed, lines_now FROM cart_carts
    WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE 'AXC01' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
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

CREATE TRIGGER cart_items_count_insert AFTER INSERT ON cart_items FOR EACH ROW
    UPDATE cart_carts SET line_count = line_count + 1 WHERE id = NEW.cart_id;

CREATE TRIGGER cart_items_count_delete AFTER DELETE ON cart_items FOR EACH ROW
    UPDATE cart_carts SET line_count = line_count - 1 WHERE id = OLD.cart_id;

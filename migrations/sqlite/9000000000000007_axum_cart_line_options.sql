-- A line is (product kind, product id, options): the same product in two sizes is two
-- lines. `options` holds the line's options as a JSON object with sorted names ('' for
-- none) and `options_key` 32 hex digits of its SHA-256 ('' for none); the unique line key
-- takes the options key in. SQLite cannot change a table's UNIQUE constraint, so the
-- table is rebuilt with its rows, ids and triggers.
CREATE TABLE cart_items_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    cart_id          INTEGER NOT NULL REFERENCES cart_carts (id) ON DELETE CASCADE,
    product_kind     TEXT    NOT NULL CHECK (length(product_kind) BETWEEN 1 AND 50),
    product_id       INTEGER NOT NULL CHECK (product_id >= 0),
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents BETWEEN 0 AND 99999999999999),
    options          TEXT    NOT NULL DEFAULT '' CHECK (length(options) <= 2000),
    options_key      TEXT    NOT NULL DEFAULT '' CHECK (length(options_key) IN (0, 32)),
    CHECK ((options = '') = (options_key = '')),
    UNIQUE (cart_id, product_kind, product_id, options_key)
);
INSERT INTO cart_items_new (id, cart_id, product_kind, product_id, quantity, unit_price_cents)
    SELECT id, cart_id, product_kind, product_id, quantity, unit_price_cents FROM cart_items;
DROP TABLE cart_items;
ALTER TABLE cart_items_new RENAME TO cart_items;

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

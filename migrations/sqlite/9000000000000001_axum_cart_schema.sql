-- axum-cart schema for SQLite. Money is stored as integer cents (exact); times as Unix seconds.
CREATE TABLE cart_discounts (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    code                 TEXT    NOT NULL UNIQUE
                         CHECK (length(code) BETWEEN 1 AND 50 AND code = upper(trim(code))),
    discount_type        TEXT    NOT NULL DEFAULT 'percent' CHECK (discount_type IN ('percent', 'fixed')),
    value_cents          INTEGER NOT NULL CHECK (value_cents >= 0),
    min_cart_value_cents INTEGER CHECK (min_cart_value_cents IS NULL OR min_cart_value_cents >= 0),
    max_uses             INTEGER CHECK (max_uses IS NULL OR max_uses >= 0),
    current_uses         INTEGER NOT NULL DEFAULT 0
                         CHECK (current_uses >= 0 AND (max_uses IS NULL OR current_uses <= max_uses)),
    active               INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    valid_from           INTEGER,
    valid_until          INTEGER,
    created_at           INTEGER NOT NULL,
    CHECK (discount_type <> 'percent' OR value_cents <= 10000),
    CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from <= valid_until)
);

CREATE TABLE cart_carts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    checked_out    INTEGER NOT NULL DEFAULT 0 CHECK (checked_out IN (0, 1)),
    checked_out_at INTEGER,
    user_id        TEXT CHECK (user_id IS NULL OR length(user_id) <= 255),
    discount_id    INTEGER REFERENCES cart_discounts (id) ON DELETE SET NULL
);
CREATE INDEX cart_carts_open_updated ON cart_carts (checked_out, updated_at);
CREATE INDEX cart_carts_user ON cart_carts (user_id, created_at);
CREATE INDEX cart_carts_created ON cart_carts (created_at);
CREATE INDEX cart_carts_discount ON cart_carts (discount_id);

CREATE TABLE cart_items (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    cart_id          INTEGER NOT NULL REFERENCES cart_carts (id) ON DELETE CASCADE,
    product_kind     TEXT    NOT NULL CHECK (length(product_kind) BETWEEN 1 AND 50),
    product_id       INTEGER NOT NULL CHECK (product_id >= 0),
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000000000),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents BETWEEN 0 AND 99999999999999),
    UNIQUE (cart_id, product_kind, product_id)
);

-- A line of a checked-out cart can never be written; every line write marks the cart active.
CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: cart is checked out')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id AND checked_out = 1);
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE id = NEW.cart_id;
END;

CREATE TRIGGER cart_items_guard_update BEFORE UPDATE ON cart_items
BEGIN
    SELECT RAISE(ABORT, 'axum_cart: cart is checked out')
    WHERE EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id AND checked_out = 1);
    UPDATE cart_carts SET updated_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE id = NEW.cart_id;
END;

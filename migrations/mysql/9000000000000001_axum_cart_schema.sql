-- axum-cart schema for MySQL 8 / MariaDB 10.5+. Money is DECIMAL(18,2); times are Unix seconds.
CREATE TABLE cart_discounts (
    id             BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    code           VARCHAR(50)   NOT NULL,
    discount_type  VARCHAR(10)   NOT NULL DEFAULT 'percent',
    value          DECIMAL(10,2) NOT NULL,
    min_cart_value DECIMAL(18,2) NULL,
    max_uses       BIGINT        NULL,
    current_uses   BIGINT        NOT NULL DEFAULT 0,
    active         BOOLEAN       NOT NULL DEFAULT TRUE,
    valid_from     BIGINT        NULL,
    valid_until    BIGINT        NULL,
    created_at     BIGINT        NOT NULL,
    CONSTRAINT cart_discounts_code UNIQUE (code),
    CONSTRAINT cart_discounts_code_form CHECK (CHAR_LENGTH(code) >= 1 AND BINARY code = BINARY UPPER(TRIM(code))),
    CONSTRAINT cart_discounts_type CHECK (discount_type IN ('percent', 'fixed')),
    CONSTRAINT cart_discounts_value CHECK (value >= 0 AND (discount_type <> 'percent' OR value <= 100)),
    CONSTRAINT cart_discounts_min CHECK (min_cart_value IS NULL OR min_cart_value >= 0),
    CONSTRAINT cart_discounts_uses CHECK (current_uses >= 0 AND (max_uses IS NULL OR (max_uses >= 0 AND current_uses <= max_uses))),
    CONSTRAINT cart_discounts_window CHECK (valid_from IS NULL OR valid_until IS NULL OR valid_from <= valid_until)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE cart_carts (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at     BIGINT       NOT NULL,
    updated_at     BIGINT       NOT NULL,
    checked_out    BOOLEAN      NOT NULL DEFAULT FALSE,
    checked_out_at BIGINT       NULL,
    user_id        VARCHAR(255) NULL,
    discount_id    BIGINT       NULL,
    CONSTRAINT cart_carts_discount_fk FOREIGN KEY (discount_id) REFERENCES cart_discounts (id) ON DELETE SET NULL,
    INDEX cart_carts_open_updated (checked_out, updated_at),
    INDEX cart_carts_user (user_id, created_at),
    INDEX cart_carts_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE cart_items (
    id           BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    cart_id      BIGINT        NOT NULL,
    product_kind VARCHAR(50)   NOT NULL,
    product_id   BIGINT        NOT NULL,
    quantity     BIGINT        NOT NULL,
    unit_price   DECIMAL(18,2) NOT NULL,
    CONSTRAINT cart_items_line UNIQUE (cart_id, product_kind, product_id),
    CONSTRAINT cart_items_cart_fk FOREIGN KEY (cart_id) REFERENCES cart_carts (id) ON DELETE CASCADE,
    CONSTRAINT cart_items_kind CHECK (CHAR_LENGTH(product_kind) >= 1),
    CONSTRAINT cart_items_product CHECK (product_id >= 0),
    CONSTRAINT cart_items_quantity CHECK (quantity BETWEEN 1 AND 1000000000),
    CONSTRAINT cart_items_price CHECK (unit_price >= 0 AND unit_price < 1000000000000)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A line of a checked-out cart can never be written; every line write marks the cart
-- active. The locking read waits for a checkout in flight and then sees its result.
CREATE TRIGGER cart_items_guard_insert BEFORE INSERT ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    SELECT checked_out INTO closed FROM cart_carts WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP() WHERE id = NEW.cart_id;
END;

CREATE TRIGGER cart_items_guard_update BEFORE UPDATE ON cart_items FOR EACH ROW
BEGIN
    DECLARE closed BOOLEAN DEFAULT NULL;
    SELECT checked_out INTO closed FROM cart_carts WHERE id = NEW.cart_id FOR UPDATE;
    IF closed THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'axum_cart: cart is checked out';
    END IF;
    UPDATE cart_carts SET updated_at = UNIX_TIMESTAMP() WHERE id = NEW.cart_id;
END;

-- A line is (product kind, product id, options): the same product in two sizes is two
-- lines. `options` holds the line's options as a JSON object with sorted names ('' for
-- none) and `options_key` 32 hex digits of its SHA-256 ('' for none); the unique line key
-- takes the options key in.
ALTER TABLE cart_items
    ADD COLUMN options TEXT NOT NULL DEFAULT '' CHECK (length(options) <= 2000),
    ADD COLUMN options_key VARCHAR(32) NOT NULL DEFAULT '' CHECK (length(options_key) IN (0, 32)),
    ADD CONSTRAINT cart_items_options_pair CHECK ((options = '') = (options_key = ''));
ALTER TABLE cart_items DROP CONSTRAINT cart_items_line;
ALTER TABLE cart_items ADD CONSTRAINT cart_items_line
    UNIQUE (cart_id, product_kind, product_id, options_key);

-- The most lines of a cart, enforced where the cart row is locked: `add` gives its limit in
-- `max_lines` (never stored: the guard reads it and sets it to NULL), and a new line in a
-- cart that already has that many is refused with SQLSTATE AXC03. The guard's UPDATE takes
-- the cart row lock first, so the count is of what the adds before it committed: concurrent
-- adds cannot pass the limit together. Writes that give no limit (the locked writes, which
-- check it themselves) are not limited here.
ALTER TABLE cart_items ADD COLUMN max_lines INTEGER;

CREATE OR REPLACE FUNCTION cart_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cart_carts SET updated_at = extract(epoch FROM now())::BIGINT
    WHERE id = NEW.cart_id AND NOT checked_out;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id) THEN
        RAISE EXCEPTION 'axum_cart: cart is checked out' USING ERRCODE = 'AXC01';
    END IF;
    IF TG_OP = 'INSERT' AND NEW.max_lines IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM cart_items WHERE cart_id = NEW.cart_id
                       AND product_kind = NEW.product_kind AND product_id = NEW.product_id
                       AND options_key = NEW.options_key)
           AND (SELECT count(*) FROM cart_items WHERE cart_id = NEW.cart_id) >= NEW.max_lines THEN
            RAISE EXCEPTION 'axum_cart: the cart has its most lines' USING ERRCODE = 'AXC03';
        END IF;
        NEW.max_lines := NULL;
    END IF;
    RETURN NEW;
END
$$;

-- Every cart has a version that every committed change adds 1 to (issue 13): the ETag of
-- the cart routes, and what `Cart::if_version` / `If-Match` compare. A row starts at 0
-- when it is created (an empty cart nothing has changed yet); carts that existed before
-- this migration start at 1 (the column is added with default 1, a change of the catalog
-- only, then the default becomes 0), so version 0 always means "never changed".
ALTER TABLE cart_carts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE cart_carts ALTER COLUMN version SET DEFAULT 0;

-- The locked writes add 1 in the statement that marks the cart active (one per
-- transaction, whatever it wrote). `add` is one statement of its own: the guard adds 1
-- when the row is an add's (the add gives `max_lines`; the locked writes do not), in the
-- UPDATE that already takes the cart row's lock, before the insert or the update of the
-- line; an add that is refused (a guard, or past the line's maximum, which the add turns
-- into a CHECK failure) rolls it back with the rest of the statement. Otherwise the guard
-- is that of 9000000000000008.
CREATE OR REPLACE FUNCTION cart_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cart_carts SET updated_at = extract(epoch FROM now())::BIGINT,
        version = version + CASE WHEN TG_OP = 'INSERT' AND NEW.max_lines IS NOT NULL
                                 THEN 1 ELSE 0 END
    WHERE id = NEW.cart_id AND NOT checked_out;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id) THEN
        RAISE EXCEPTION 'axum_cart: cart is checked out' USING ERRCODE = 'AXC01';
    END IF;
    IF EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id
               AND frozen_until > floor(extract(epoch FROM now()))::BIGINT) THEN
        RAISE EXCEPTION 'axum_cart: cart is frozen' USING ERRCODE = 'AXC04';
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

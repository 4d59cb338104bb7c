-- A cart can be frozen while its payment runs: until `frozen_until` (Unix seconds) its
-- lines cannot change. The guard refuses a line write to a frozen cart with SQLSTATE AXC04,
-- under the cart row's lock, so an add racing a freeze is either before it or refused.
ALTER TABLE cart_carts ADD COLUMN frozen_until BIGINT;

CREATE OR REPLACE FUNCTION cart_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cart_carts SET updated_at = extract(epoch FROM now())::BIGINT
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

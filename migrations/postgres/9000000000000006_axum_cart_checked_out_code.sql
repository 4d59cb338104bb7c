-- The guard against writing a line of a checked-out cart raises its own SQLSTATE, AXC01
-- (class AX: axum-cart), so the store recognises it by code: before, it raised
-- check_violation, which real CHECK constraints raise too. Otherwise unchanged.
CREATE OR REPLACE FUNCTION cart_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cart_carts SET updated_at = extract(epoch FROM now())::BIGINT
    WHERE id = NEW.cart_id AND NOT checked_out;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM cart_carts WHERE id = NEW.cart_id) THEN
        RAISE EXCEPTION 'axum_cart: cart is checked out' USING ERRCODE = 'AXC01';
    END IF;
    RETURN NEW;
END
$$;

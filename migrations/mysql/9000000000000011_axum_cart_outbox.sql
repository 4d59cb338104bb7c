-- The transactional outbox (issue 13). Every committed change writes its events here, in
-- the transaction of the change; a relay delivers them at least once, in order per cart
-- (by `id`, which the cart's row lock makes the commit order of one cart's events). A
-- `checked_out` event gets a row in each lane: `events` (the sinks) and `orders` (the
-- app's checkout hook), each with its own delivery state. No foreign key to the cart: an
-- event outlives a merged or cleaned cart.
--   state: 0 pending, 1 delivered, 2 parked (failed the relay's most attempts).
--   lease_until: a relay that took the row delivers it until then; another relay waits.
--   done_sinks: the sinks that already have it (comma separated), so a retry skips them.
CREATE TABLE cart_outbox (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id        VARCHAR(36)  NOT NULL,
    lane            VARCHAR(16)  NOT NULL,
    cart_id         BIGINT       NOT NULL,
    event_type      VARCHAR(32)  NOT NULL,
    created_at      BIGINT       NOT NULL,
    body            MEDIUMTEXT   NOT NULL,
    state           BIGINT       NOT NULL DEFAULT 0,
    attempts        BIGINT       NOT NULL DEFAULT 0,
    next_attempt_at BIGINT       NOT NULL DEFAULT 0,
    lease_until     BIGINT       NOT NULL DEFAULT 0,
    done_sinks      VARCHAR(255) NOT NULL DEFAULT '',
    last_error      TEXT         NULL,
    finished_at     BIGINT       NULL,
    CONSTRAINT cart_outbox_event UNIQUE (event_id, lane)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX cart_outbox_pending ON cart_outbox (lane, state, id);
CREATE INDEX cart_outbox_cart ON cart_outbox (cart_id, lane, state, id);

-- The version at which a cart's `abandoned` event was written: one per idle spell.
ALTER TABLE cart_carts ADD COLUMN abandoned_version BIGINT NULL;

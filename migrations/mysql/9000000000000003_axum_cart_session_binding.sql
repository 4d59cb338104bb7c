-- Concurrent requests of one session share one cart. A cart created for a session carries
-- the session's key, which is unique: requests racing to create the session's first cart
-- (or its next one, after a checkout) all find the same row. The key is released when the
-- cart stops being that session's open cart (checkout, logout, login as someone else).
ALTER TABLE cart_carts ADD COLUMN session_key VARCHAR(64) NULL,
    ADD UNIQUE INDEX cart_carts_session_key (session_key);

-- Where a merged guest cart went: a request still holding the guest cart's id (it raced
-- the login) follows the merge instead of starting a cart nobody would see.
CREATE TABLE cart_merges (
    source_id BIGINT NOT NULL PRIMARY KEY,
    target_id BIGINT NOT NULL,
    merged_at BIGINT NOT NULL,
    INDEX cart_merges_target (target_id),
    CONSTRAINT cart_merges_target_fk FOREIGN KEY (target_id) REFERENCES cart_carts (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Concurrent requests of one session share one cart. A cart created for a session carries
-- the session's key, which is unique: requests racing to create the session's first cart
-- (or its next one, after a checkout) all find the same row. The key is released when the
-- cart stops being that session's open cart (checkout, logout, login as someone else).
ALTER TABLE cart_carts ADD COLUMN session_key VARCHAR(64);
CREATE UNIQUE INDEX cart_carts_session_key ON cart_carts (session_key);

-- Where a merged guest cart went: a request still holding the guest cart's id (it raced
-- the login) follows the merge instead of starting a cart nobody would see.
CREATE TABLE cart_merges (
    source_id INTEGER NOT NULL PRIMARY KEY,
    target_id INTEGER NOT NULL REFERENCES cart_carts (id) ON DELETE CASCADE,
    merged_at INTEGER NOT NULL
);
CREATE INDEX cart_merges_target ON cart_merges (target_id);

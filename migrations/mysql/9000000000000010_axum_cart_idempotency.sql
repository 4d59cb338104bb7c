-- Idempotency keys of the HTTP routes (`Idempotency-Key`): one row per visitor scope and
-- key. `scope` is the session's identity (a SHA-256 in hex, as `cart_carts.session_key`),
-- so one visitor's key never answers another's request. `fingerprint` is the SHA-256 of
-- the request's method, path and body. `state` is `running` (reserved by the request
-- holding `token`), `applied` (its cart write committed, in the write's own transaction)
-- or `complete` (`status`, `headers` as a JSON object and `body` are the answer to
-- replay). Times are Unix seconds: `locked_at` is when the request holding the row
-- started, `expires_at` when `cart clean` may delete the row. Keys compare byte for byte
-- (utf8mb4_bin), as on the other backends.
CREATE TABLE cart_idempotency (
    scope VARCHAR(64) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    state VARCHAR(16) NOT NULL CHECK (state IN ('running', 'applied', 'complete')),
    token VARCHAR(64) NOT NULL,
    locked_at BIGINT NOT NULL,
    status BIGINT NULL,
    headers MEDIUMTEXT NULL,
    body MEDIUMTEXT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key),
    INDEX cart_idempotency_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

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

-- A cart can be frozen while its payment runs: until `frozen_until` (Unix seconds) its
-- lines and discount cannot change. The writes check it under SQLite's single writer (the
-- add in its own statement), so no trigger is needed here.
ALTER TABLE cart_carts ADD COLUMN frozen_until INTEGER;

-- The capture triggers name every column: they are written again after a column is
-- added (natively) and after a table rebuild.
-- migrate:up
ALTER TABLE notes ADD COLUMN tags TEXT[];
ALTER TABLE notes ALTER COLUMN body SET NOT NULL;

-- migrate:down
ALTER TABLE notes ALTER COLUMN body DROP NOT NULL;
ALTER TABLE notes DROP COLUMN tags;

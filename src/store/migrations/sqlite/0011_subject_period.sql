-- The subject (course code as the source names it) and the lesson of the
-- day (1-based) of a record, when the source says: absence patterns by
-- subject and by lesson are read from these.
ALTER TABLE records ADD COLUMN subject TEXT;
ALTER TABLE records ADD COLUMN period INTEGER;

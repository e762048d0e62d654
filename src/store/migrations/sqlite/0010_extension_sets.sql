-- A record's extensions (the source's own code and label, say) are mostly
-- a few sets repeated over a million rows. SQLite stores each set once and
-- a record refers to it (extensions_ref): that makes a row about a third
-- narrower, and a bulk import writes that much less. Rows written before
-- keep their JSON in `extensions`; a row has one or the other, never both.
CREATE TABLE record_extensions (
    id      INTEGER PRIMARY KEY,
    -- SHA-256 of the JSON, in hex: one row per distinct set.
    digest  TEXT    NOT NULL UNIQUE,
    json    TEXT    NOT NULL
);
ALTER TABLE records ADD COLUMN extensions_ref INTEGER;

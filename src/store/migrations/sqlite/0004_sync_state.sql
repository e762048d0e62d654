-- Pull adapters' cursors (e.g. Ed-Fi change versions), one per source and stream.
-- A cursor is written only after the batch it covers is committed.
CREATE TABLE sync_state (
    source TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, stream)
);

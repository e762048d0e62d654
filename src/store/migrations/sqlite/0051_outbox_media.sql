-- Images and files posted by the bot (charts, PDF documents): the bytes of
-- an outbox post of kind 'image' or 'file', kept apart so listing the
-- outbox never reads them. The retention purge deletes them with the case.
CREATE TABLE matrix_outbox_media (
    outbox_id INTEGER PRIMARY KEY,
    mime      TEXT NOT NULL,
    file_name TEXT NOT NULL,
    width     INTEGER,
    height    INTEGER,
    data      BLOB NOT NULL
);

-- The archive outbox: one row per final case document on its way to the
-- municipal archive (Fiks Arkiv). document_key is unique, so a document is
-- queued at most once; message_id is fixed when it is queued and reused on
-- every retry, so the archive can recognise a resend. Rows are never
-- deleted: the receipt stays, and the failed-attempts counter for /metrics
-- is their sum.
CREATE TABLE archive_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    document_key    TEXT NOT NULL UNIQUE,
    message_id      TEXT NOT NULL UNIQUE,
    case_number     TEXT NOT NULL,
    school          TEXT NOT NULL,
    document_kind   TEXT NOT NULL,
    title           TEXT NOT NULL,
    file_reference  TEXT NOT NULL,
    arkivmelding    TEXT,
    document        BLOB,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    enqueued_at     TEXT NOT NULL,
    received_at     TEXT,
    archived_at     TEXT,
    failed_at       TEXT,
    notified_at     TEXT,
    folder_system_id      TEXT,
    folder_created        INTEGER,
    journalpost_system_id TEXT,
    journalpost_number    TEXT
);
CREATE INDEX archive_outbox_due ON archive_outbox (state, next_attempt_at);
CREATE INDEX archive_outbox_case ON archive_outbox (case_number);

-- The retention purge deletes a case's row; what the archive has confirmed
-- then loses our copy (the archive keeps its own). Documents not yet
-- archived keep theirs until they are delivered.
CREATE TRIGGER archive_outbox_purge_copy AFTER DELETE ON cases
BEGIN
    UPDATE archive_outbox SET arkivmelding = NULL, document = NULL
     WHERE case_number = OLD.number AND state = 'archived';
END;

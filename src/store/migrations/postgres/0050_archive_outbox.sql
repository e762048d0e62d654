-- See the SQLite migration of the same number for what each part is for.
CREATE TABLE archive_outbox (
    id              BIGSERIAL PRIMARY KEY,
    document_key    TEXT NOT NULL UNIQUE,
    message_id      TEXT NOT NULL UNIQUE,
    case_number     TEXT NOT NULL,
    school          TEXT NOT NULL,
    document_kind   TEXT NOT NULL,
    title           TEXT NOT NULL,
    file_reference  TEXT NOT NULL,
    arkivmelding    TEXT,
    document        BYTEA,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    failures        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    enqueued_at     TEXT NOT NULL,
    received_at     TEXT,
    archived_at     TEXT,
    failed_at       TEXT,
    notified_at     TEXT,
    folder_system_id      TEXT,
    folder_created        BIGINT,
    journalpost_system_id TEXT,
    journalpost_number    TEXT
);
CREATE INDEX archive_outbox_due ON archive_outbox (state, next_attempt_at);
CREATE INDEX archive_outbox_case ON archive_outbox (case_number);

CREATE FUNCTION archive_outbox_purge_copy() RETURNS trigger AS $$
BEGIN
    UPDATE archive_outbox SET arkivmelding = NULL, document = NULL
     WHERE case_number = OLD.number AND state = 'archived';
    RETURN OLD;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER archive_outbox_purge_copy AFTER DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION archive_outbox_purge_copy();

-- See the SQLite migration of the same number for what each table is for.
CREATE TABLE matrix_outbox (
    id           BIGSERIAL PRIMARY KEY,
    room_key     TEXT NOT NULL,
    txn_id       TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    anchor       TEXT,
    thread_ref   TEXT,
    target_ref   TEXT,
    body         TEXT NOT NULL,
    html         TEXT NOT NULL,
    mentions     TEXT NOT NULL,
    enqueued_at  TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    event_id     TEXT,
    delivered_at TEXT
);
CREATE UNIQUE INDEX matrix_outbox_anchor ON matrix_outbox (room_key, anchor);
CREATE INDEX matrix_outbox_pending ON matrix_outbox (room_key, id) WHERE delivered_at IS NULL;

CREATE TABLE matrix_rooms (
    room_key       TEXT PRIMARY KEY,
    room_id        TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    members        TEXT NOT NULL,
    blocked        BIGINT NOT NULL DEFAULT 0,
    blocked_reason TEXT,
    created_at     TEXT NOT NULL
);

CREATE TABLE matrix_commands_seen (
    event_id   TEXT PRIMARY KEY,
    handled_at TEXT NOT NULL
);

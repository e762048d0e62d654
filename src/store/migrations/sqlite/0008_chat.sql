-- The case workflow in chat.
-- Rooms the bot is asked to create (a case room for a fagkoordinator): the
-- bot creates each on its next delivery round and registers it in matrix_rooms.
CREATE TABLE matrix_room_plans (
    room_key   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    name       TEXT,
    members    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Multi-step chat dialogues (building a samarbeidsavtale), one per
-- (room, thread, user), so a restart continues where the person was.
CREATE TABLE chat_dialogues (
    room_key   TEXT NOT NULL,
    thread     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (room_key, thread, user_id)
);

-- The case card text last enqueued per room: an unchanged card is not edited.
CREATE TABLE chat_cards (
    room_key    TEXT NOT NULL,
    case_number TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (room_key, case_number)
);

-- Digests already enqueued (per recipient and period), so each goes out once.
CREATE TABLE chat_digests (
    key        TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);

-- Which case a post is about (for the retention purge's redactions), and the
-- batch a post was merged into when the outbox coalesced a backlog.
ALTER TABLE matrix_outbox ADD COLUMN case_number TEXT;
ALTER TABLE matrix_outbox ADD COLUMN batch_id INTEGER;
CREATE INDEX matrix_outbox_case ON matrix_outbox (case_number);

-- Canonical absence records, keyed by (source, id). Tombstones stay as rows
-- (deleted = 1) so that an older version arriving late cannot resurrect them.
CREATE TABLE records (
    source      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    pupil       TEXT    NOT NULL,
    school      TEXT    NOT NULL,
    date        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    lessons     INTEGER NOT NULL,
    minutes     INTEGER,
    validity    TEXT    NOT NULL,
    reason      TEXT,
    deleted     INTEGER NOT NULL DEFAULT 0,
    extensions  TEXT,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX records_pupil_date ON records (pupil, date);

-- Pupils whose findings must be recomputed; filled by triggers so that every
-- writer (CLI import, HTTP ingest, pulls) marks them the same way.
CREATE TABLE dirty_pupils (pupil TEXT PRIMARY KEY);

-- NOT EXISTS rather than INSERT OR IGNORE: inside a trigger fired by an
-- upsert, SQLite lets the outer statement's conflict handling override the
-- trigger's OR IGNORE.
CREATE TRIGGER records_mark_insert AFTER INSERT ON records BEGIN
    INSERT INTO dirty_pupils (pupil) SELECT NEW.pupil
        WHERE NOT EXISTS (SELECT 1 FROM dirty_pupils WHERE pupil = NEW.pupil);
END;
CREATE TRIGGER records_mark_update AFTER UPDATE ON records BEGIN
    INSERT INTO dirty_pupils (pupil) SELECT OLD.pupil
        WHERE NOT EXISTS (SELECT 1 FROM dirty_pupils WHERE pupil = OLD.pupil);
    INSERT INTO dirty_pupils (pupil) SELECT NEW.pupil
        WHERE NOT EXISTS (SELECT 1 FROM dirty_pupils WHERE pupil = NEW.pupil);
END;

-- The current findings, one row per pupil and rule.
CREATE TABLE findings (
    pupil        TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    criterion    TEXT    NOT NULL,
    school       TEXT    NOT NULL,
    window_from  TEXT    NOT NULL,
    window_to    TEXT    NOT NULL,
    measured     REAL    NOT NULL,
    threshold    REAL    NOT NULL,
    unit         TEXT    NOT NULL,
    evidence     TEXT    NOT NULL,
    unclassified TEXT    NOT NULL,
    explanation  TEXT    NOT NULL,
    first_seen   TEXT    NOT NULL,
    PRIMARY KEY (pupil, rule)
);
CREATE INDEX findings_school ON findings (school);

-- Every change to findings, in order, for consumers such as the case workflow.
CREATE TABLE finding_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    pupil      TEXT NOT NULL,
    rule       TEXT NOT NULL,
    change     TEXT NOT NULL,
    finding    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Input that was rejected, with the reason and where it came from.
CREATE TABLE quarantine (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT,
    location    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    digest      TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

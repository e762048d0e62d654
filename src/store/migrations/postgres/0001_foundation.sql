-- See the SQLite migration of the same number for what each table is for.
CREATE TABLE records (
    source      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    pupil       TEXT    NOT NULL,
    school      TEXT    NOT NULL,
    date        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    lessons     BIGINT  NOT NULL,
    minutes     BIGINT,
    validity    TEXT    NOT NULL,
    reason      TEXT,
    deleted     BIGINT  NOT NULL DEFAULT 0,
    extensions  TEXT,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX records_pupil_date ON records (pupil, date);

CREATE TABLE dirty_pupils (pupil TEXT PRIMARY KEY);

CREATE FUNCTION tilstede_mark_dirty() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO dirty_pupils (pupil) VALUES (OLD.pupil) ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO dirty_pupils (pupil) VALUES (NEW.pupil) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER records_mark AFTER INSERT OR UPDATE ON records
    FOR EACH ROW EXECUTE FUNCTION tilstede_mark_dirty();

CREATE TABLE findings (
    pupil        TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    criterion    TEXT    NOT NULL,
    school       TEXT    NOT NULL,
    window_from  TEXT    NOT NULL,
    window_to    TEXT    NOT NULL,
    measured     DOUBLE PRECISION NOT NULL,
    threshold    DOUBLE PRECISION NOT NULL,
    unit         TEXT    NOT NULL,
    evidence     TEXT    NOT NULL,
    unclassified TEXT    NOT NULL,
    explanation  TEXT    NOT NULL,
    first_seen   TEXT    NOT NULL,
    PRIMARY KEY (pupil, rule)
);
CREATE INDEX findings_school ON findings (school);

CREATE TABLE finding_events (
    seq        BIGSERIAL PRIMARY KEY,
    pupil      TEXT NOT NULL,
    rule       TEXT NOT NULL,
    change     TEXT NOT NULL,
    finding    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE quarantine (
    seq         BIGSERIAL PRIMARY KEY,
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

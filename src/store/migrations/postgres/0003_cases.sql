-- Cases: one row per case with its whole state as JSON, plus the contact
-- log, agreements and referrals as rows, an append-only audit log and the
-- durable queue of notifications for the Matrix bot.
CREATE TABLE cases (
    number      TEXT PRIMARY KEY,
    pupil       TEXT NOT NULL,
    school      TEXT NOT NULL,
    open        BIGINT NOT NULL,
    phase       BIGINT NOT NULL,
    responsible TEXT NOT NULL,
    next_due    TEXT,
    long_term   BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    state       TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
-- One open case per pupil.
CREATE UNIQUE INDEX cases_open_pupil ON cases (pupil) WHERE open = 1;
CREATE INDEX cases_school ON cases (school, open);

CREATE TABLE case_numbers (
    year BIGINT PRIMARY KEY,
    last BIGINT NOT NULL
);

CREATE TABLE case_contacts (
    seq         BIGSERIAL PRIMARY KEY,
    case_number TEXT NOT NULL,
    by_id       TEXT NOT NULL,
    by_role     TEXT NOT NULL,
    with_whom   TEXT NOT NULL,
    at          TEXT NOT NULL,
    channel     TEXT NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX case_contacts_case ON case_contacts (case_number);

CREATE TABLE case_agreements (
    case_number     TEXT NOT NULL,
    number          BIGINT NOT NULL,
    made_at         TEXT NOT NULL,
    valid_until     TEXT NOT NULL,
    evaluation_date TEXT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (case_number, number)
);

CREATE TABLE case_referrals (
    seq                   BIGSERIAL PRIMARY KEY,
    case_number           TEXT NOT NULL,
    agency                TEXT NOT NULL,
    decided               TEXT NOT NULL,
    sent                  TEXT,
    pedagogisk_rapport    BIGINT NOT NULL,
    legeerklaering_needed BIGINT NOT NULL
);
CREATE INDEX case_referrals_case ON case_referrals (case_number);

CREATE TABLE case_audit (
    seq         BIGSERIAL PRIMARY KEY,
    case_number TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX case_audit_case ON case_audit (case_number, seq);

CREATE TABLE notifications (
    seq          BIGSERIAL PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    case_number  TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    notice       TEXT NOT NULL,
    extra        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX notifications_pending ON notifications (delivered_at, seq);
CREATE FUNCTION case_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'case_audit is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER case_audit_no_change BEFORE UPDATE OR DELETE ON case_audit
FOR EACH ROW EXECUTE FUNCTION case_audit_append_only();

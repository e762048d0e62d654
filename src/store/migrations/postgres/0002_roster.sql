-- The roster: who is in which class, and who is their contact teacher.
CREATE TABLE schools (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE classes (
    id               TEXT PRIMARY KEY,
    school           TEXT NOT NULL,
    name             TEXT NOT NULL,
    grade            BIGINT NOT NULL,
    contact_teachers TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX classes_school ON classes (school);

CREATE TABLE pupils (
    id          TEXT PRIMARY KEY,
    school      TEXT NOT NULL,
    class       TEXT,
    grade       BIGINT NOT NULL,
    given_name  TEXT NOT NULL,
    family_name TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX pupils_school ON pupils (school);

CREATE TABLE staff (
    id          TEXT PRIMARY KEY,
    given_name  TEXT NOT NULL,
    family_name TEXT NOT NULL,
    matrix_id   TEXT,
    school      TEXT,
    updated_at  TEXT NOT NULL
);

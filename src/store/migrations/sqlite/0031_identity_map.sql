-- The identity map: which pupils of two sources IT's configured roster
-- column says are one child. `identity` is the HMAC-SHA256 token of the
-- shared identifier (a Feide id, a national id), never the identifier.
-- One source has at most one pupil per identity, and a pupil at most one
-- identity; the school is the roster's, and only pupils of one school link.
CREATE TABLE pupil_links (
    source    TEXT NOT NULL,
    local_id  TEXT NOT NULL,
    identity  TEXT NOT NULL,
    school    TEXT NOT NULL,
    PRIMARY KEY (source, local_id)
);
CREATE UNIQUE INDEX pupil_links_identity ON pupil_links (identity, source);

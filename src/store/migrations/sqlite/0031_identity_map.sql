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

-- Where a source's pupil key went when a link moved it. A record pushed
-- while the link committed can still land under the old key; the next
-- link (roster import) moves such records on. A source never gets an old
-- key of its own back, so the pair (source, old key) means one pupil.
CREATE TABLE pupil_moves (
    source   TEXT NOT NULL,
    old_key  TEXT NOT NULL,
    new_key  TEXT NOT NULL,
    PRIMARY KEY (source, old_key)
);

-- Request ids of pushes, kept until their signed timestamp is too old to be
-- accepted anyway: a replayed push (the same id again) is refused.
CREATE TABLE push_requests (
    source      TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    -- Unix seconds after which the id may be forgotten.
    expires_at  BIGINT  NOT NULL,
    PRIMARY KEY (source, request_id)
);
CREATE INDEX push_requests_expiry ON push_requests (expires_at);
-- The last version given to unversioned records of a source: each push gets
-- a higher one, so a correction sent within the same second still wins.
CREATE TABLE source_versions (
    source        TEXT    PRIMARY KEY,
    last_version  BIGINT  NOT NULL
);

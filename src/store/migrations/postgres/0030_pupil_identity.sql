-- A pupil is one child of one source: (source, local id). The pupil key a
-- record is stored under is the bare local id for the source that owns it
-- (the first to use it) and SOURCE:ID for any other source with the same
-- local id, unless IT links the ids (the identity map).
CREATE TABLE pupil_owners (
    pupil   TEXT PRIMARY KEY,
    source  TEXT NOT NULL
);
CREATE TABLE pupil_keys (
    source    TEXT NOT NULL,
    local_id  TEXT NOT NULL,
    pupil     TEXT NOT NULL,
    PRIMARY KEY (source, local_id)
);
CREATE INDEX pupil_keys_pupil ON pupil_keys (pupil);

-- Stores written before kept every source's pupil under the bare id, so two
-- children with the same id in two systems were one. Each id now goes to
-- the source with the most records under it (the alphabetically first on a
-- tie), and every other source's records of that id move to their own key.
INSERT INTO pupil_owners (pupil, source)
SELECT pupil, source FROM (
    SELECT pupil, source,
           ROW_NUMBER() OVER (PARTITION BY pupil ORDER BY COUNT(*) DESC, source) AS rank
    FROM records WHERE pupil <> '' GROUP BY pupil, source
) AS ranked WHERE rank = 1;
INSERT INTO pupil_keys (source, local_id, pupil)
SELECT DISTINCT r.source, r.pupil,
       CASE WHEN o.source = r.source THEN r.pupil ELSE r.source || ':' || r.pupil END
FROM records r JOIN pupil_owners o ON o.pupil = r.pupil
WHERE r.pupil <> '';
-- The merged pupils are evaluated again, apart (the trigger of migration 9
-- marks the id each moved record leaves).
UPDATE records SET pupil = (
    SELECT k.pupil FROM pupil_keys k WHERE k.source = records.source AND k.local_id = records.pupil
) WHERE pupil <> '' AND EXISTS (
    SELECT 1 FROM pupil_keys k WHERE k.source = records.source AND k.local_id = records.pupil AND k.pupil <> k.local_id
);
INSERT INTO dirty_pupils (pupil)
SELECT DISTINCT pupil FROM pupil_keys WHERE pupil <> local_id
ON CONFLICT (pupil) DO NOTHING;

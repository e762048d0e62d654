-- Art. 9 minimisation of the quarantine: a rejection is kept as its place,
-- a reason code and the field at fault. The input itself is kept only for
-- sources with keep_raw (decided when a row is written), and the reason is
-- text built by tilstede from the code, never a copy of the input.
ALTER TABLE quarantine ADD COLUMN code TEXT NOT NULL DEFAULT 'legacy';
ALTER TABLE quarantine ADD COLUMN field TEXT;

-- Rows from before: the two reasons that were codes already keep theirs.
UPDATE quarantine SET code = 'school-not-allowed', field = 'school' WHERE reason LIKE 'school-not-allowed:%';
UPDATE quarantine SET code = 'source-mismatch', field = 'source' WHERE reason LIKE 'source-mismatch:%';

-- The old free-text reasons may echo the input (a diagnosis in a bad
-- field), and the raw input may hold other records' text: both go. A
-- migration cannot read the configuration, so this holds for every source,
-- keep_raw or not; rows written after the upgrade follow keep_raw.
UPDATE quarantine SET reason = '', raw = '';

-- The quarantine's own retention purges by arrival.
CREATE INDEX quarantine_received ON quarantine (received_at);

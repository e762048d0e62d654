-- Pupils to re-evaluate are now marked by the writers, once per batch, from
-- the rows their upserts report as changed (RETURNING), instead of by a
-- trigger per row. Only a record that moves to another pupil still needs a
-- trigger, for the pupil it left.
DROP TRIGGER records_mark ON records;
DROP FUNCTION tilstede_mark_dirty();

CREATE FUNCTION tilstede_mark_moved() RETURNS trigger AS $$
BEGIN
    INSERT INTO dirty_pupils (pupil) VALUES (OLD.pupil) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER records_mark_moved AFTER UPDATE ON records
    FOR EACH ROW WHEN (OLD.pupil IS DISTINCT FROM NEW.pupil) EXECUTE FUNCTION tilstede_mark_moved();

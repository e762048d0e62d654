-- Pupils to re-evaluate are now marked by the writers, once per batch, from
-- the rows their upserts report as changed (RETURNING), instead of by a
-- trigger per row: the triggers cost as much as the insert itself in a bulk
-- import. Only a record that moves to another pupil still needs a trigger,
-- for the pupil it left.
DROP TRIGGER records_mark_insert;
DROP TRIGGER records_mark_update;
CREATE TRIGGER records_mark_moved AFTER UPDATE OF pupil ON records WHEN OLD.pupil <> NEW.pupil BEGIN
    INSERT INTO dirty_pupils (pupil) SELECT OLD.pupil
        WHERE NOT EXISTS (SELECT 1 FROM dirty_pupils WHERE pupil = OLD.pupil);
END;

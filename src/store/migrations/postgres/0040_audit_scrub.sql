-- The case audit log stays append-only with one exception: when a case has
-- been purged (its row in `cases` is gone), the free text its rows carry in
-- `detail` (risks, goals, Plan B, the finding event it came from …) may be
-- replaced by '{}'. Who (actor, role), what (action) and when (at) can
-- never change, and no row can ever be deleted.
CREATE OR REPLACE FUNCTION case_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.detail = '{}'
       AND NEW.seq = OLD.seq
       AND NEW.case_number = OLD.case_number
       AND NEW.actor = OLD.actor
       AND NEW.role = OLD.role
       AND NEW.action = OLD.action
       AND NEW.at = OLD.at
       AND NOT EXISTS (SELECT 1 FROM cases WHERE number = OLD.case_number) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'case_audit is append-only';
END;
$$ LANGUAGE plpgsql;

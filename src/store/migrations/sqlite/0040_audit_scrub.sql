-- The case audit log stays append-only with one exception: when a case has
-- been purged (its row in `cases` is gone), the free text its rows carry in
-- `detail` (risks, goals, Plan B, the finding event it came from …) may be
-- replaced by '{}'. Who (actor, role), what (action) and when (at) can
-- never change, and no row can ever be deleted.
DROP TRIGGER case_audit_no_update;
CREATE TRIGGER case_audit_no_update BEFORE UPDATE ON case_audit
WHEN NOT (
    NEW.detail = '{}'
    AND NEW.seq IS OLD.seq
    AND NEW.case_number IS OLD.case_number
    AND NEW.actor IS OLD.actor
    AND NEW.role IS OLD.role
    AND NEW.action IS OLD.action
    AND NEW.at IS OLD.at
    AND NOT EXISTS (SELECT 1 FROM cases WHERE number = OLD.case_number)
)
BEGIN SELECT RAISE(ABORT, 'case_audit is append-only'); END;

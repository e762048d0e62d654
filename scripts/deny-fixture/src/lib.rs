//! Empty: only the lock file matters.

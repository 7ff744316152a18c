-- The dbutil version table, created the way go.mau.fi/util/dbutil creates it, so
-- that a Go caller and this package agree on where the version lives.
CREATE TABLE IF NOT EXISTS whatsmeow_version (
    version INTEGER,
    compat  INTEGER
);

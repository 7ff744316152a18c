-- Index health of the whatsmeow tables: redundant, invalid and unused indexes,
-- and foreign keys that no index serves.
--   psql -v ON_ERROR_STOP=1 -f audits/30-indexes.sql
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

-- Every index of a whatsmeow table, its vectors as 1-based arrays. indkey lists
-- the key columns and then the INCLUDE columns; 0 stands for an expression.
CREATE OR REPLACE VIEW whatsmeow_audit.index_columns AS
SELECT
    i.indexrelid,
    i.indrelid,
    t.table_name,
    am.amname AS access_method,
    i.indisunique,
    i.indisprimary,
    i.indisvalid,
    i.indisready,
    i.indnkeyatts,
    i.indexrelid::REGCLASS::TEXT AS index_name,
    string_to_array(i.indkey::TEXT, ' ')::INT2[] AS all_columns,
    (string_to_array(i.indkey::TEXT, ' ')::INT2[])[1:i.indnkeyatts] AS key_columns,
    string_to_array(i.indclass::TEXT, ' ')::OID[] AS opclasses,
    string_to_array(i.indcollation::TEXT, ' ')::OID[] AS collations,
    string_to_array(i.indoption::TEXT, ' ')::INT2[] AS options,
    pg_get_expr(i.indexprs, i.indrelid) AS expressions,
    pg_get_expr(i.indpred, i.indrelid) AS predicate,
    -- Which of two identical unique indexes to keep: the primary key, then a
    -- constraint's index, then a bare unique index, then any other.
    CASE
        WHEN i.indisprimary THEN 0
        WHEN EXISTS (
            SELECT FROM pg_constraint AS con
            WHERE con.conindid = i.indexrelid
        ) THEN 1
        WHEN i.indisunique THEN 2
        ELSE 3
    END AS keep_rank
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_index AS i ON t.relid = i.indrelid
INNER JOIN pg_class AS ic ON i.indexrelid = ic.oid
INNER JOIN pg_am AS am ON ic.relam = am.oid;

-- Index a is redundant next to index b on the same table when b answers every
-- query a answers: same method, same partial predicate, and a's key columns
-- (same operator classes, collations and ordering) are the first key columns
-- of b, with a's INCLUDE columns somewhere in b. An expression index counts
-- only as an exact duplicate. A unique index is never redundant next to a
-- longer one, since it enforces something the longer one does not; of two
-- identical ones, the lower keep_rank (then the older) stays. One row per
-- redundant index, naming the index that makes it so.
CREATE OR REPLACE VIEW whatsmeow_audit.redundant_indexes AS
SELECT DISTINCT ON (a.indexrelid)
    format('%s on %s', a.index_name, a.table_name) AS object,
    CASE
        WHEN a.indnkeyatts = b.indnkeyatts
            THEN format('duplicates %s (%s)', b.index_name, whatsmeow_audit.column_names(b.indrelid, b.key_columns))
        ELSE format(
            'its columns (%s) are a leading prefix of %s (%s)',
            whatsmeow_audit.column_names(a.indrelid, a.key_columns),
            b.index_name,
            whatsmeow_audit.column_names(b.indrelid, b.key_columns)
        )
    END AS problem
FROM whatsmeow_audit.index_columns AS a
INNER JOIN whatsmeow_audit.index_columns AS b
    ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid
WHERE
    a.indisvalid
    AND b.indisvalid
    AND a.access_method = b.access_method
    AND a.predicate IS NOT DISTINCT FROM b.predicate
    AND a.indnkeyatts <= b.indnkeyatts
    AND (a.access_method = 'btree' OR a.indnkeyatts = b.indnkeyatts)
    AND a.key_columns = b.key_columns[1:a.indnkeyatts]
    AND a.opclasses = b.opclasses[1:a.indnkeyatts]
    AND a.collations = b.collations[1:a.indnkeyatts]
    AND a.options = b.options[1:a.indnkeyatts]
    AND a.all_columns[a.indnkeyatts + 1:] <@ b.all_columns
    AND (
        a.expressions IS NULL
        OR (a.indnkeyatts = b.indnkeyatts AND a.expressions = b.expressions)
    )
    AND (
        CASE
            WHEN a.indnkeyatts < b.indnkeyatts THEN NOT a.indisunique
            WHEN a.indisunique AND NOT b.indisunique THEN FALSE
            ELSE (a.keep_rank, a.indexrelid) > (b.keep_rank, b.indexrelid)
        END
    )
ORDER BY a.indexrelid, b.keep_rank, b.indexrelid;

-- A failed CREATE INDEX CONCURRENTLY (or REINDEX CONCURRENTLY) leaves its index
-- behind: every write maintains it, no query uses it.
CREATE OR REPLACE VIEW whatsmeow_audit.invalid_indexes AS
SELECT
    format('%s on %s', i.index_name, i.table_name) AS object,
    format(
        'is invalid: a failed or still running CREATE INDEX CONCURRENTLY or REINDEX; '
        'writes maintain it but no query uses it (DROP INDEX CONCURRENTLY %s, then build it again)',
        i.index_name
    ) AS problem
FROM whatsmeow_audit.index_columns AS i
WHERE NOT i.indisvalid OR NOT i.indisready;

-- Without an index leading with its columns (in any order), each delete or key
-- update of a referenced row scans the whole referencing table, under lock.
CREATE OR REPLACE VIEW whatsmeow_audit.unindexed_foreign_keys AS
SELECT
    format('%I on %s', con.conname, t.table_name) AS object,
    format(
        'foreign key (%s) -> %s has no index leading with its columns: '
        'every delete or key update there scans %s',
        whatsmeow_audit.column_names(con.conrelid, con.conkey),
        con.confrelid::REGCLASS,
        t.table_name
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_constraint AS con ON t.relid = con.conrelid
WHERE
    con.contype = 'f'
    AND NOT EXISTS (
        SELECT FROM whatsmeow_audit.index_columns AS i
        WHERE
            i.indrelid = con.conrelid
            AND i.indisvalid
            AND i.access_method = 'btree'
            AND i.predicate IS NULL
            AND i.indnkeyatts >= cardinality(con.conkey)
            AND i.key_columns[1:cardinality(con.conkey)] @> con.conkey
            AND i.key_columns[1:cardinality(con.conkey)] <@ con.conkey
    );

-- Informational: indexes with no scan since the statistics were last reset.
-- A unique index still enforces its constraint, and a replica's scans are not
-- counted here, so this is a list to look at, not to drop.
CREATE OR REPLACE VIEW whatsmeow_audit.unused_indexes AS
SELECT
    i.index_name,
    i.table_name,
    i.indisunique AS is_unique,
    s.idx_scan AS scans,
    pg_relation_size(i.indexrelid) AS size_bytes,
    (
        SELECT d.stats_reset FROM pg_stat_database AS d
        WHERE d.datname = current_database()
    ) AS counted_since
FROM whatsmeow_audit.index_columns AS i
INNER JOIN pg_stat_user_indexes AS s ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0
ORDER BY pg_relation_size(i.indexrelid) DESC, i.index_name;

CALL whatsmeow_audit.restrict_access();

COMMIT;

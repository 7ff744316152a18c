//go:build tenantdb

package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

const setTenant = "SELECT whatsmeow_set_tenant($1)"

// TenantDB stands in for the store's pool and names Tenant in every transaction, as
// row-level security requires (docs/row-level-security.md). A statement the store runs on its
// own is sent in one batch after SELECT whatsmeow_set_tenant($1): one round trip, like the bare
// statement. A batch is one pipeline closed by a single Sync, so PostgreSQL runs it as one
// implicit transaction, and the SET LOCAL that whatsmeow_set_tenant runs inside the function
// lasts until that transaction ends. A transaction the store opens gets the call as its first
// statement.
type TenantDB struct {
	Pool   *pgxpool.Pool
	Tenant string
}

// run sends the statement after the tenant and returns the open batch, positioned at the
// statement's result; finish closes the batch, which ends the transaction, and gives the
// connection back.
func (t *TenantDB) run(ctx context.Context, sql string, args []any) (*pgxpool.Conn, pgx.BatchResults, error) {
	conn, err := t.Pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	batch := &pgx.Batch{}
	batch.Queue(setTenant, t.Tenant)
	batch.Queue(sql, args...)
	results := conn.SendBatch(ctx, batch)
	if _, err = results.Exec(); err != nil {
		t.finish(conn, results, err)
		return nil, nil, err
	}
	return conn, results, nil
}

func (t *TenantDB) finish(conn *pgxpool.Conn, results pgx.BatchResults, err error) error {
	if closeErr := results.Close(); err == nil {
		err = closeErr
	}
	conn.Release()
	return err
}

func (t *TenantDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	conn, results, err := t.run(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := results.Exec()
	return tag, t.finish(conn, results, err)
}

func (t *TenantDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	conn, results, err := t.run(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := results.Query()
	if err != nil {
		rows.Close()
		return nil, t.finish(conn, results, err)
	}
	return &tenantRows{Rows: rows, t: t, conn: conn, results: results}, nil
}

func (t *TenantDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return tenantRow{ctx: ctx, t: t, sql: sql, args: args}
}

func (t *TenantDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := t.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err = tx.Exec(ctx, setTenant, t.Tenant); err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

func (t *TenantDB) Close() { t.Pool.Close() }

// tenantRows ends the statement's transaction when the caller closes the rows.
type tenantRows struct {
	pgx.Rows
	t       *TenantDB
	conn    *pgxpool.Conn
	results pgx.BatchResults
	err     error
	closed  bool
}

func (r *tenantRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.t.finish(r.conn, r.results, r.Rows.Err())
}

func (r *tenantRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.Rows.Err()
}

func (r *tenantRows) Next() bool {
	if r.closed {
		return false
	}
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

// tenantRow runs its statement when scanned, like pgx's own row.
type tenantRow struct {
	ctx  context.Context
	t    *TenantDB
	sql  string
	args []any
}

func (r tenantRow) Scan(dest ...any) error {
	rows, err := r.t.Query(r.ctx, r.sql, r.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err = rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err = rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return errors.Join(rows.Err())
}

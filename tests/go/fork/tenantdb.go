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

// oneMoreStatement takes the tenant call's place in the benchmark's floor: a statement as
// trivial as a statement gets, with the same bind parameter, to measure what one more statement
// in the round trip costs by itself.
const oneMoreStatement = "SELECT $1::TEXT"

// TenantDB stands in for the store's pool and names Tenant in every transaction, as
// row-level security requires (docs/row-level-security.md), without a round trip of its own.
// A statement the store runs on its own is sent in one batch after
// SELECT whatsmeow_set_tenant($1): one round trip, like the bare statement. A batch is one
// pipeline closed by a single Sync, so PostgreSQL runs it as one implicit transaction, and the
// tenant the call sets lasts until that transaction ends. A transaction the store opens sends
// nothing until its first statement, which travels in one batch with BEGIN and the call.
type TenantDB struct {
	Pool   *pgxpool.Pool
	Tenant string
	// naming is the statement sent with the tenant as its parameter: setTenant unless the
	// benchmark measures its floor (oneMoreStatement).
	naming string
}

func (t *TenantDB) namingStatement() string {
	if t.naming == "" {
		return setTenant
	}
	return t.naming
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
	batch.Queue(t.namingStatement(), t.Tenant)
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

// Begin takes a connection from the pool and sends nothing: BEGIN and the tenant call go with
// the transaction's first statement (tenantTx).
func (t *TenantDB) Begin(ctx context.Context) (pgx.Tx, error) {
	conn, err := t.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &tenantTx{t: t, conn: conn}, nil
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

// tenantTx is a transaction on one pooled connection whose BEGIN and tenant call are sent with
// its first statement, in one batch; later statements run on the connection as they come. A
// failed statement leaves the transaction open and aborted, as in pgx, until Rollback. What
// the store does in a transaction is Exec, Commit and Rollback; Query and CopyFrom also work,
// and savepoints and large objects are refused rather than half supported.
type tenantTx struct {
	t       *TenantDB
	conn    *pgxpool.Conn
	started bool
	closed  bool
}

var errTenantTxUnsupported = errors.New("tenantTx: savepoints and large objects are not supported")

// start sends BEGIN and the tenant call, with the first statement of the transaction if
// there is one (sql != ""); the results of that statement are left in the open batch.
func (tx *tenantTx) start(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if tx.closed {
		return nil, pgx.ErrTxClosed
	}
	tx.started = true
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	batch.Queue(tx.t.namingStatement(), tx.t.Tenant)
	if sql != "" {
		batch.Queue(sql, args...)
	}
	results := tx.conn.SendBatch(ctx, batch)
	for i := 0; i < 2; i++ {
		if _, err := results.Exec(); err != nil {
			_ = results.Close()
			return nil, serverError(err)
		}
	}
	if sql == "" {
		return nil, results.Close()
	}
	return results, nil
}

func (tx *tenantTx) ensureStarted(ctx context.Context) error {
	if tx.closed {
		return pgx.ErrTxClosed
	}
	if tx.started {
		return nil
	}
	_, err := tx.start(ctx, "", nil)
	return err
}

func (tx *tenantTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if tx.closed {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	if tx.started {
		return tx.conn.Exec(ctx, sql, args...)
	}
	results, err := tx.start(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := results.Exec()
	if closeErr := results.Close(); err == nil {
		err = closeErr
	}
	return tag, serverError(err)
}

// serverError returns the server's own error where pgx wrapped it in a note about the batch,
// so that a statement fails with the same error as on a bare transaction.
func serverError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return err
}

func (tx *tenantTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := tx.ensureStarted(ctx); err != nil {
		return nil, err
	}
	return tx.conn.Query(ctx, sql, args...)
}

func (tx *tenantTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := tx.ensureStarted(ctx); err != nil {
		return errRow{err}
	}
	return tx.conn.QueryRow(ctx, sql, args...)
}

func (tx *tenantTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := tx.ensureStarted(ctx); err != nil {
		return errBatchResults{err}
	}
	return tx.conn.SendBatch(ctx, b)
}

func (tx *tenantTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := tx.ensureStarted(ctx); err != nil {
		return 0, err
	}
	return tx.conn.CopyFrom(ctx, table, columns, src)
}

func (tx *tenantTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if tx.closed {
		return nil, pgx.ErrTxClosed
	}
	return tx.conn.Conn().Prepare(ctx, name, sql)
}

func (tx *tenantTx) Begin(ctx context.Context) (pgx.Tx, error) { return nil, errTenantTxUnsupported }

func (tx *tenantTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (tx *tenantTx) Conn() *pgx.Conn { return tx.conn.Conn() }

// end sends COMMIT or ROLLBACK, if anything was sent, and gives the connection back.
func (tx *tenantTx) end(ctx context.Context, command string) error {
	if tx.closed {
		return pgx.ErrTxClosed
	}
	tx.closed = true
	defer tx.conn.Release()
	if !tx.started {
		return nil
	}
	tag, err := tx.conn.Exec(ctx, command)
	if err != nil {
		// The connection's state is unknown: close it rather than give it back mid-transaction.
		_ = tx.conn.Conn().Close(ctx)
		return err
	}
	if command == "COMMIT" && tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (tx *tenantTx) Commit(ctx context.Context) error   { return tx.end(ctx, "COMMIT") }
func (tx *tenantTx) Rollback(ctx context.Context) error { return tx.end(ctx, "ROLLBACK") }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type errBatchResults struct{ err error }

func (r errBatchResults) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, r.err }
func (r errBatchResults) Query() (pgx.Rows, error)         { return nil, r.err }
func (r errBatchResults) QueryRow() pgx.Row                { return errRow{r.err} }
func (r errBatchResults) Close() error                     { return r.err }

var _ pgx.Tx = (*tenantTx)(nil)

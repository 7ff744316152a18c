// upstream-check opens a PostgreSQL database (or an SQLite file) the way unmodified whatsmeow does, or
// the way a fork that embeds the package's upgrades/ does, and prints what happened as one JSON line.
//
//	upstream-check open DSN          sqlstore.New(ctx, "postgres", DSN, nil), upstream as released
//	upstream-check padded N DSN      the same, with upstream's upgrade table extended to N versions
//	upstream-check embedded DSN      the same, with the package's upgrades/ in place of upstream's
//	upstream-check fill DSN          upstream's v15 store, written through upstream's store API
//	upstream-check fill-sqlite PATH  the same in an SQLite file, through mattn/go-sqlite3
//	upstream-check read DSN          open it as upstream does and read back, through the store API only,
//	upstream-check read-sqlite PATH  everything fill wrote: the devices and a digest of every value
//	upstream-check table             the size of the embedded upgrade table
//
// Exit status: 0 opened, 1 refused or failed, 2 usage.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	_ "github.com/lib/pq"
	_ "github.com/mattn/go-sqlite3"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/store/sqlstore/upgrades"

	"whatsmeow-tenancy/tests/go/upstream/pkgupgrades"
)

type result struct {
	Opened      bool     `json:"opened"`
	Unsupported bool     `json:"unsupported,omitempty"`
	Error       string   `json:"error,omitempty"`
	KnownSteps  int      `json:"known_versions"`
	Version     int      `json:"version,omitempty"`
	Compat      int      `json:"compat,omitempty"`
	StoreCalls  int      `json:"store_calls,omitempty"`
	Devices     []string `json:"devices,omitempty"`
	Values      int      `json:"values,omitempty"`
	Digest      string   `json:"digest,omitempty"`
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: upstream-check open DSN | padded N DSN | embedded DSN | fill DSN | fill-sqlite PATH | "+
		"read DSN | read-sqlite PATH | table")
	os.Exit(2)
}

// pad extends upstream's table the way later upstream releases would: one step per version, each
// compatible down to v8 like upstream's own, so that it knows `size` versions.
func pad(table dbutil.UpgradeTable, size int) dbutil.UpgradeTable {
	wip := dbutil.WIPUpgradeTable(append(dbutil.UpgradeTable(nil), table...))
	for from := len(table); from < size; from++ {
		wip = wip.WithRaw(from, from+1, 8, "a later upstream version", dbutil.TxnModeOn,
			func(context.Context, *dbutil.Database) error { return nil })
	}
	return wip.Finish()
}

func readVersion(dialect, dsn string) (version, compat int) {
	db, err := sql.Open(dialect, dsn)
	if err != nil {
		return
	}
	defer db.Close()
	_ = db.QueryRow("SELECT version, coalesce(compat, version) FROM whatsmeow_version").Scan(&version, &compat)
	return
}

func main() {
	ctx := context.Background()
	if len(os.Args) < 2 {
		usage()
	}
	var res result
	var err error
	var dsn string
	dialect := "postgres"
	switch os.Args[1] {
	case "open", "padded":
		if os.Args[1] == "padded" {
			if len(os.Args) != 4 {
				usage()
			}
			size, convErr := strconv.Atoi(os.Args[2])
			if convErr != nil {
				usage()
			}
			upgrades.Table = pad(upgrades.Table, size)
			dsn = os.Args[3]
		} else {
			if len(os.Args) != 3 {
				usage()
			}
			dsn = os.Args[2]
		}
		res.KnownSteps = len(upgrades.Table)
		var container *sqlstore.Container
		container, err = sqlstore.New(ctx, "postgres", dsn, nil)
		if err == nil {
			container.Close()
		}
	case "fill", "fill-sqlite", "read", "read-sqlite":
		if len(os.Args) != 3 {
			usage()
		}
		dsn = os.Args[2]
		if os.Args[1] == "fill-sqlite" || os.Args[1] == "read-sqlite" {
			// As upstream's documentation opens SQLite: foreign keys on.
			dialect, dsn = "sqlite3", "file:"+dsn+"?_foreign_keys=on"
		}
		res.KnownSteps = len(upgrades.Table)
		var container *sqlstore.Container
		container, err = sqlstore.New(ctx, dialect, dsn, nil)
		if err == nil {
			if os.Args[1] == "fill" || os.Args[1] == "fill-sqlite" {
				res.StoreCalls, err = fill(ctx, container)
			} else {
				res.Devices, res.Values, res.Digest, err = readBack(ctx, container)
			}
			container.Close()
		}
	case "embedded":
		if len(os.Args) != 3 {
			usage()
		}
		// A fork that puts upgrades/ in place of store/sqlstore/upgrades: upstream's container,
		// with its version table, running the package's steps.
		dsn = os.Args[2]
		upgrades.Table = pkgupgrades.Table
		res.KnownSteps = len(upgrades.Table)
		var container *sqlstore.Container
		container, err = sqlstore.New(ctx, "postgres", dsn, nil)
		if err == nil {
			container.Close()
		}
	case "table":
		res.KnownSteps = len(pkgupgrades.Table)
		res.Opened = true
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	default:
		usage()
	}
	res.Version, res.Compat = readVersion(dialect, dsn)
	if err != nil {
		res.Error = err.Error()
		res.Unsupported = errors.Is(err, dbutil.ErrUnsupportedDatabaseVersion)
	} else {
		res.Opened = true
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if err != nil {
		os.Exit(1)
	}
}

//go:build !tenantdb

package main

import "github.com/jackc/pgx/v5/pgxpool"

// The fork as released takes the pool itself; there is nothing to wrap it in.
const canWrap = false

func storeDB(pool *pgxpool.Pool, _ string, kind string) *pgxpool.Pool {
	if kind != "pool" {
		fail("this build of the fork takes a *pgxpool.Pool; the tenant wrapper needs fork-store-tenantdb")
	}
	return pool
}

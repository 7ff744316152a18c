//go:build tenantdb

package main

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mau.fi/whatsmeow/store/sqlstore"
)

const canWrap = true

// storeDB is what the store runs on: the pool, the tenant wrapper, or the wrapper with
// oneMoreStatement in place of the tenant call (the benchmark's floor).
func storeDB(pool *pgxpool.Pool, tenant string, kind string) sqlstore.DB {
	switch kind {
	case "wrap":
		return &TenantDB{Pool: pool, Tenant: tenant}
	case "floor":
		return &TenantDB{Pool: pool, Tenant: tenant, naming: oneMoreStatement}
	}
	return pool
}

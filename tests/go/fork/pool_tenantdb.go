//go:build tenantdb

package main

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mau.fi/whatsmeow/store/sqlstore"
)

const canWrap = true

func storeDB(pool *pgxpool.Pool, tenant string, wrap bool) sqlstore.DB {
	if wrap {
		return &TenantDB{Pool: pool, Tenant: tenant}
	}
	return pool
}

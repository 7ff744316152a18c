module whatsmeow-tenancy/tests/go/upstream

go 1.26.0

require (
	github.com/lib/pq v0.0.0
	github.com/mattn/go-sqlite3 v1.14.48
	go.mau.fi/util v0.0.0
	go.mau.fi/whatsmeow v0.0.0
)

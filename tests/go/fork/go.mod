module whatsmeow-tenancy/tests/go/fork

go 1.26.0

require (
	github.com/jackc/pgx/v5 v5.7.6
	go.mau.fi/whatsmeow v0.0.0
)

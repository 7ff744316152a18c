// Package pkgupgrades is the package's upgrades/ directory embedded the way docs/go-fork.md tells a
// fork to: .ci/go copies upgrades/*.sql next to this file before it builds.
package pkgupgrades

import (
	"embed"

	"go.mau.fi/util/dbutil"
)

//go:embed *.sql
var upgrades embed.FS

var Table = dbutil.BuildUpgradeTable().WithFS(upgrades).Finish()

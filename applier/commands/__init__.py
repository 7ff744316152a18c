"""The command layer: one module per command, each with `run(args) -> exit code`, over the core modules
of applier/ (which never import from here)."""

from __future__ import annotations

from applier.commands import audit, check_queries, demo, embedded, prune, rls, status, tenant, upgrade, verify

RUNNERS = {
    "upgrade": upgrade.run,
    "status": status.run,
    "demo": demo.run,
    "audit": audit.run,
    "verify": verify.run,
    "prune": prune.run,
    "rls": rls.run,
    "tenant": tenant.run,
    "embedded": embedded.run,
    "check-queries": check_queries.run,
}

"""The command layer: one module per command, each with `add_parser(commands, shared)`, which declares
its flags, and `run(args) -> exit code`, over the core modules of applier/ (which never import from here).
A new command is one more module in COMMANDS."""

from __future__ import annotations

from applier.commands import audit, check_queries, demo, embedded, prune, rls, status, tenant, upgrade, verify

# In the order `--help` lists them.
COMMANDS = (upgrade, status, demo, audit, verify, prune, rls, tenant, check_queries, embedded)

"""`check-queries FILE...`: prove that queries in the catalogue's format keep to one tenant (exit 1 on findings).

The checking is applier.check_queries; this module reads the files, prints and picks the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from applier.check_queries import BULK_TENANTS, TENANTS, Finding, Result, check_queries, distributed_store
from applier.database import open_database
from applier.errors import EXIT_ERROR, EXIT_OK, EXIT_PENDING, ApplierError
from applier.queries import Query, parse_entries

SUMMARY = "run queries written against the store for two tenants that share every key; report every leak (exit 1)"
EXAMPLE = "check-queries queries/*.sql --json"
DETAILS = """\
Each FILE holds entries in the format of schema/queries.sql: `-- name: NAME`, `-- params: a, b`
(the names of $1, $2, … after the store columns they bind, such as business_id, our_jid,
their_id), then one statement, ending at a blank line. The store is built in a scratch schema
inside a transaction that is rolled back, so the database is left unchanged; it needs CREATE on
the database and CREATEROLE (a superuser, or the owner of a managed database).

exit codes: 0 every query keeps to its tenant; 1 findings; 2 usage or input errors (an unreadable
  file, an entry that does not parse, a statement refused unrun: not one query, DDL, a
  transaction statement, an unknown parameter name), or connection errors.
"""


def add_parser(commands, shared) -> None:
    """Declare `check-queries` under `commands` (an add_subparsers() result); `shared` gives the common
    options (`common`), the program's name (`prog`) and the closing notes (`epilog`)."""
    parser = commands.add_parser(
        "check-queries", parents=[shared.common], help=SUMMARY, description=SUMMARY,
        epilog=f"example: {shared.prog} {EXAMPLE}\n\n{DETAILS}\n{shared.epilog}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", help="a file of queries in the catalogue's format")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--no-plans", action="store_true",
                        help="skip the plan check, which loads 300 tenants of statistics (a few seconds)")
    parser.set_defaults(run=run)


def read_files(paths: list[str]) -> tuple[list[Query], list[Result]]:
    """Every entry of every file, and a refused result for each piece of text that does not parse."""
    queries: list[Query] = []
    unparsed: list[Result] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ApplierError(f"cannot read {path}: {reason}") from exc
        found, errors = parse_entries(text, path)
        if not found and not errors:
            raise ApplierError(f"{path} holds no query: each entry starts with `-- name:` and `-- params:` lines")
        queries += found
        for error in errors:
            placeholder = Query(error.name or "(none)", (), "", path, error.line, error.line)
            unparsed.append(Result(placeholder, refused=True))
            unparsed[-1].findings.append(Finding("parse-error", f"line {error.line}: {error.message}"))
    return queries, unparsed


def print_report(results: list[Result]) -> None:
    for result in sorted(results, key=lambda r: (r.query.file, r.query.line)):
        query = result.query
        status = "ok" if not result.findings else ("REFUSED" if result.refused else "FAIL")
        print(f"{query.file}:{query.line}: {query.name}: {status}")
        for finding in result.findings:
            print(f"    {finding.kind}: {finding.detail}")
        for note in result.notes:
            print(f"    note: {note}")


def run(args) -> int:
    as_json = args.json

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    started = time.monotonic()
    queries, unparsed = read_files(args.files)
    with open_database(args.dsn, quiet=args.quiet) as conn:
        progress(f"checking {len(queries)} queries for tenants {' and '.join(TENANTS)}")
        citus = distributed_store(conn)
        results = check_queries(conn, queries, plans=not args.no_plans, progress=progress)
    results += unparsed
    seconds = time.monotonic() - started
    leaking = [r for r in results if r.findings and not r.refused]
    refused = [r for r in results if r.refused]
    if as_json:
        doc = {
            "queries": [r.as_json() for r in sorted(results, key=lambda r: (r.query.file, r.query.line))],
            "tenants": list(TENANTS),
            "plan_tenants": 0 if args.no_plans else len(TENANTS) + len(BULK_TENANTS),
            "citus": citus,
            "checked": len(results) - len(refused),
            "with_findings": len(leaking),
            "refused": len(refused),
            "seconds": round(seconds, 2),
        }
        print(json.dumps(doc, indent=2))
    else:
        print_report(results)
        print(f"result: {len(results)} queries, {len(leaking)} with findings, {len(refused)} refused unrun "
              f"({seconds:.1f} s)")
    if not args.quiet:
        print(f"checked {len(results)} queries in {seconds:.1f} s; the database is unchanged", file=sys.stderr)
    if refused:
        return EXIT_ERROR
    return EXIT_PENDING if leaking else EXIT_OK

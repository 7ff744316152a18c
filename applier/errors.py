"""The one error type the applier raises, with the exit code it maps to."""

# Exit codes, as documented in the README and in `--help`.
EXIT_OK = 0
EXIT_PENDING = 1  # pending steps, drift or audit findings
EXIT_ERROR = 2  # usage, configuration, connection or a failed step
EXIT_NEWER = 3  # the database is newer than this package and is refused


class ApplierError(Exception):
    """An error the user can act on; printed as one `error: ...` line."""

    exit_code = EXIT_ERROR


class DatabaseNewerError(ApplierError):
    exit_code = EXIT_NEWER

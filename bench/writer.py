"""A writer beside a long job: the latency of each of its statements, one every 2 ms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

# The next statement and its parameters, each time the writer writes.
Statement = Callable[[], tuple[str, tuple]]


class Writer(threading.Thread):
    def __init__(self, dsn: str, statement: Statement):
        super().__init__(daemon=True)
        self.dsn, self.statement, self.latencies, self.stop = dsn, statement, [], threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                query, values = self.statement()
                started = time.perf_counter()
                conn.execute(query, values)
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.002)


def alongside(dsn: str, statement: Statement, *, seconds: float | None = None,
              work: Callable[[], None] | None = None) -> list[float]:
    """The writer's latencies, in seconds, while `work` runs (or for `seconds` alone)."""
    writer = Writer(dsn, statement)
    writer.start()
    if work is not None:
        work()
    else:
        time.sleep(seconds)
    writer.stop.set()
    writer.join()
    return writer.latencies


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]

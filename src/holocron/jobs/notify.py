"""Waking idle workers as soon as work arrives: LISTEN/NOTIFY on PostgreSQL, a plain sleep on SQLite.

The transaction that makes a job claimable (enqueue, retry) calls :func:`notify_job_available`; PostgreSQL
delivers the notification when that transaction commits, and never for one that rolls back, so a woken
worker always finds the job committed. An idle worker waits with :meth:`JobWaiter.wait`, which returns as
soon as a notification arrives, or after the timeout. The timeout stays the safety net: work that becomes
claimable without a notification (a retry whose backoff ends, an expired lease) is found at the next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import text

from holocron.store.database import Database

log = logging.getLogger(__name__)

CHANNEL = "holocron_jobs"
_SLICE_S = 0.25  # how often a wait with a stop event looks at it


def _dialect_of(conn: Any) -> str:
    dialect = getattr(conn, "dialect", None)
    return dialect if isinstance(dialect, str) else str(getattr(dialect, "name", ""))


def notify_job_available(conn: Any) -> None:
    """Tell listening workers that a job is ready, once the current transaction commits.

    ``conn`` is a :class:`holocron.store.database.Tx` or a SQLAlchemy ``Connection`` inside the transaction
    that wrote the job. Several calls in one transaction are delivered once. A no-op on SQLite.
    """
    if _dialect_of(conn) != "postgresql":
        return
    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class JobWaiter:
    """Sleeps until a job may be ready. One per waiting thread (it owns one database connection).

    On PostgreSQL the first :meth:`wait` opens a dedicated autocommit psycopg connection and LISTENs on it;
    notifications that arrive while the worker is busy are kept by the connection, so the next wait returns at
    once and the worker claims again. If the connection fails, waits fall back to sleeping and the
    connection is opened again at the next wait.
    """

    def __init__(self, db: Database, *, channel: str = CHANNEL) -> None:
        self.db = db
        self.channel = channel
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def _connect(self) -> Any:
        import psycopg

        url = self.db.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        conn.execute(f"LISTEN {self.channel}")
        return conn

    def listen(self) -> bool:
        """Start listening now (a wait does it too); True when notifications can be received."""
        if self.db.dialect != "postgresql":
            return False
        with self._lock:
            if not self.listening:
                try:
                    self._conn = self._connect()
                except Exception:
                    log.warning("cannot LISTEN for jobs; idle workers poll instead", exc_info=True)
                    self._conn = None
            return self.listening

    def wait(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Block until a job notification, ``stop`` being set, or ``timeout_s``; True when notified."""
        if timeout_s <= 0:
            return False
        if not self.listen():
            if stop is not None:
                stop.wait(timeout_s)
            else:
                time.sleep(timeout_s)
            return False
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                return False
            if self._receive(min(left, _SLICE_S) if stop is not None else left):
                return True

    def _receive(self, timeout_s: float) -> bool:
        with self._lock:
            conn = self._conn
            if conn is None:
                return False
            try:
                got = any(True for _ in conn.notifies(timeout=timeout_s, stop_after=1))
                if got:  # several enqueues while we were busy: one claim attempt covers them all
                    for _ in conn.notifies(timeout=0):
                        pass
                return got
            except Exception:
                log.warning("job notification connection lost; reconnecting at the next wait", exc_info=True)
                self._close_locked()
                return False

    def _close_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing left to release
                log.debug("closing the notification connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def __enter__(self) -> JobWaiter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

"""Django's SQLite backend with a fair writer lock (settings: ENGINE "webapp.sqlite" for a SQLite database).

SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's busy handler: 1, 2, 5 … then
100 ms at a time, however soon the lock comes free, while a newcomer takes it at once. Under many small concurrent
writes (labelers taking leases and saving) a request can sleep far longer than the writes ahead of it took, and the
unlucky ones wait seconds. Here every write (a transaction from BEGIN to COMMIT or ROLLBACK, or a lone
INSERT/UPDATE/DELETE in autocommit) first takes an exclusive ``flock`` on ``<database>-writer.lock``, trying again
every few milliseconds (at most MAX_PAUSE apart) while another writer holds it, so a freed lock is taken within
milliseconds, and giving up with "database is locked" after the database's ``timeout``, as SQLite does. Reads never
take it (WAL readers do not wait for writers). Processes that do not use this backend still work: they fall back on
SQLite's own lock and busy timeout.
"""

from __future__ import annotations

import fcntl
import os
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

MAX_PAUSE = 0.005  # seconds between two tries of a waiting writer (SQLite's busy handler: up to 0.1)
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "SAVEPOINT", "RELEASE", "ROLLBACK TO")


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writer_fd: int | None = None
        self._writer_held = False
        self.execute_wrappers.append(self._lone_write)

    # --- the lock ----------------------------------------------------------------------------------------------

    def _lock_writer(self) -> bool:
        """Take the writer lock unless this connection holds it already (or the database lives in memory, in one
        process). True when this call took it."""
        if self._writer_held or self.is_in_memory_db():
            return False
        if self._writer_fd is None:
            self._writer_fd = os.open(f"{self.settings_dict['NAME']}-writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        timeout = self.settings_dict["OPTIONS"].get("timeout", 5)
        deadline, pause = time.monotonic() + timeout, 0.0002
        while True:
            try:
                fcntl.flock(self._writer_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError(f"database is locked: another writer held it for {timeout} s") from None
                time.sleep(pause)
                pause = min(pause * 1.5, MAX_PAUSE)
        self._writer_held = True
        return True

    def _unlock_writer(self) -> None:
        if self._writer_held:
            self._writer_held = False
            fcntl.flock(self._writer_fd, fcntl.LOCK_UN)

    def _lone_write(self, execute, sql, params, many, context):
        """An execute wrapper: a write outside a transaction (autocommit) holds the lock for its one statement."""
        connection = self.connection
        if connection is None or connection.in_transaction or sql.lstrip()[:11].upper().startswith(_READS):
            return execute(sql, params, many, context)
        took = self._lock_writer()
        try:
            return execute(sql, params, many, context)
        finally:
            if took and not connection.in_transaction:
                self._unlock_writer()

    # --- transactions --------------------------------------------------------------------------------------------

    def _start_transaction_under_autocommit(self):
        took = self._lock_writer()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            if took:
                self._unlock_writer()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._unlock_writer()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._unlock_writer()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._unlock_writer()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None

"""Django's SQLite backend with a fair writer lock (settings: ENGINE "webapp.sqlite" for a SQLite database).

SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's busy handler: 1, 2, 5 … then
100 ms at a time, however soon the lock comes free, while a newcomer takes it at once. Under many small concurrent
writes (labelers taking leases and saving) a request can sleep far longer than the writes ahead of it took, and the
unlucky ones wait seconds. Here every write (a transaction from BEGIN to COMMIT or ROLLBACK, or a lone
INSERT/UPDATE/DELETE in autocommit) first takes an exclusive ``flock`` on ``<database>-writer.lock``; the kernel wakes
a waiting writer the moment the lock is let go, so writers take turns instead of sleeping past their turn. Reads
never take it (WAL readers do not wait for writers). Processes that do not use this backend still work: they fall
back on SQLite's own lock and busy timeout. A writer waits for the lock as long as the writer ahead of it takes (a
long import batch included), where SQLite alone would give up after its timeout with "database is locked".
"""

from __future__ import annotations

import fcntl
import os

from django.db.backends.sqlite3 import base

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
        fcntl.flock(self._writer_fd, fcntl.LOCK_EX)  # blocks in the kernel; the GIL is let go meanwhile
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

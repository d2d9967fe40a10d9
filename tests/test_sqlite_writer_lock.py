"""webapp.sqlite: every write to the SQLite database first takes <database>-writer.lock, so writers queue in the kernel
and go on the moment the lock is let go (SQLite's own busy handler sleeps up to 100 ms at a time)."""

import fcntl
import os
import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections, transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the writer lock is SQLite's"),
]


def _held() -> bool:
    """Whether some connection holds the writer lock now (tried from a descriptor of our own)."""
    fd = os.open(f"{connection.settings_dict['NAME']}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_a_write_transaction_holds_the_lock_until_it_ends_and_reads_never_take_it():
    list(Group.objects.all())
    assert not _held()
    with transaction.atomic():
        Group.objects.create(name="a")
        assert _held()
    assert not _held()  # committed
    with pytest.raises(RuntimeError), transaction.atomic():
        Group.objects.create(name="b")
        assert _held()
        raise RuntimeError
    assert not _held()  # rolled back
    Group.objects.filter(name="a").update(name="c")  # a lone write in autocommit: the lock for that statement only
    assert not _held()
    assert list(Group.objects.values_list("name", flat=True)) == ["c"]


def test_a_second_writer_waits_for_the_first_and_goes_on_when_it_commits():
    inside, done = threading.Event(), []

    def second_writer():
        inside.wait()
        try:
            with transaction.atomic():
                Group.objects.create(name="second")
            done.append(time.monotonic())
        finally:
            connections.close_all()

    thread = threading.Thread(target=second_writer)
    thread.start()
    with transaction.atomic():
        Group.objects.create(name="first")
        inside.set()
        time.sleep(0.3)
        assert not done  # blocked on the lock while the first transaction is open
        committed = time.monotonic()
    thread.join(timeout=30)
    assert done and done[0] >= committed
    assert sorted(Group.objects.values_list("name", flat=True)) == ["first", "second"]


def test_a_writer_gives_up_after_the_timeout_with_a_clear_error_and_writes_nothing():
    from django.db import OperationalError

    fd = os.open(f"{connection.settings_dict['NAME']}-writer.lock", os.O_RDWR | os.O_CREAT)
    options = connection.settings_dict["OPTIONS"]
    before = options.get("timeout")
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer, stuck
    options["timeout"] = 0.2
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            Group.objects.create(name="late")
    finally:
        options["timeout"] = before
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert not Group.objects.exists()
    Group.objects.create(name="now")  # the lock is free again
    assert Group.objects.count() == 1

# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""flock locks under <state_dir>/locks: one run at a time on a branch, a database kept from being removed
under a branch operation, and a bounded number of copies from one source; and host_lock, one lock for every
state_dir on the host, for what the Docker daemon holds for all of them. The kernel drops a lock when
its process dies, so a killed run never leaves one held."""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator, List

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError


class Locks:
    """read_only (check mode, info): no lock file is made and no lock is taken; held() still probes."""

    def __init__(self, lock_dir: str, read_only: bool = False):
        self.lock_dir = lock_dir
        self.read_only = read_only

    @contextmanager
    def slot(self, key: str, slots: int, timeout: float = 3600.0) -> Iterator[int]:
        """One of `slots` exclusive locks on `key`: at most that many holders at once; others wait."""
        stem = key.replace("/", "@")
        with self._first_free([f"{stem}.slot{n}.lock" for n in range(slots)], fcntl.LOCK_EX, timeout,
                              f"one of {slots} copy slots on {key}") as held:
            yield held

    @contextmanager
    def lock(self, key: str, shared: bool = False, timeout: float = 600.0) -> Iterator[None]:
        """An flock on <state_dir>/locks/<key>.lock."""
        with self._first_free([_lock_file(key)], fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout,
                              f"the lock on {key}; another run is working on it"):
            yield

    def held(self, key: str) -> bool:
        """Whether a live process holds the lock on `key` (read-only stores can ask too): probed with a
        shared lock, taken and dropped at once."""
        try:
            fd = os.open(os.path.join(self.lock_dir, _lock_file(key)), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return True
        finally:
            os.close(fd)

    @contextmanager
    def _first_free(self, names: List[str], mode: int, timeout: float, waiting_for: str) -> Iterator[int]:
        """Holds the first of the lock files `names` that can be had in `mode`, polling until `timeout`;
        the kernel drops it if the process dies. Read-only stores take no locks."""
        if self.read_only:
            yield 0
            return
        fds = [os.open(os.path.join(self.lock_dir, name), os.O_RDWR | os.O_CREAT, 0o600) for name in names]
        deadline = time.monotonic() + timeout
        try:
            while True:
                for number, fd in enumerate(fds):
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    except OSError as error:
                        if error.errno not in (errno.EAGAIN, errno.EACCES):
                            raise
                        continue
                    yield number
                    return
                if time.monotonic() >= deadline:
                    raise LockBusy(f"timed out after {timeout:.0f}s waiting for {waiting_for}")
                time.sleep(0.05)
        finally:
            for fd in fds:
                os.close(fd)


def _lock_file(key: str) -> str:
    """The lock file of `key` under lock_dir: what lock() takes and held() probes must be one file."""
    return key.replace("/", "@") + ".lock"


class LockBusy(BranchingError):
    """Another process holds the lock for longer than the caller would wait."""


@contextmanager
def host_lock(key: str) -> Iterator[None]:
    """An flock on <tmp>/baseful-<key>.lock, shared by every user and state_dir on this host, for what the
    Docker daemon holds for all of them (its networks). The file is opened read-only (flock needs no more),
    so a lock file another user made serves as well."""
    path = os.path.join(tempfile.gettempdir(), f"baseful-{key}.lock")
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-storage seam: data directories on the Docker host's file system. The service and the copy
methods reach the file system only through `HostStorage` (a test can hand them another)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

from ansible_collections.baseful.branching.plugins.module_utils.errors import CopyFailed, InputError
from ansible_collections.baseful.branching.plugins.module_utils.migrations import MigrationFile, check_path, order
from ansible_collections.baseful.branching.plugins.module_utils.secret import POSTGRES_UID

FICLONE = 0x40049409  # ioctl: make the destination share the source's extents (XFS, btrfs)


def reflink_supported(directory: str) -> bool:
    """Whether files under `directory` can be cloned copy-on-write; probes with two temporary files."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".reflink-probe-") as source, \
            tempfile.NamedTemporaryFile(dir=directory, prefix=".reflink-probe-") as clone:
        source.write(b"probe")
        source.flush()
        try:
            fcntl.ioctl(clone.fileno(), FICLONE, source.fileno())
        except OSError:
            return False
    return True


def copy_tree(source: str, target: str, reflink: str) -> None:
    """Copies the contents of `source` into the existing directory `target`, keeping owners and
    modes. reflink 'always' clones or fails; 'auto' clones where it can and copies the rest."""
    done = subprocess.run(["cp", "-a", f"--reflink={reflink}", "--", f"{source}/.", f"{target}/"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CopyFailed(f"copying {source} to {target} failed: {done.stderr.strip()[-300:]}")


def tree_size(path: str, allocated: bool = False) -> int:
    """Bytes of the files under `path`: their apparent size, or with `allocated` the disk blocks
    they hold (what `du` shows)."""
    return tree_sizes(path)[1 if allocated else 0]


def tree_sizes(path: str) -> Tuple[int, int]:
    """Apparent and allocated bytes of the files under `path`, in one walk."""
    apparent = allocated = 0
    for root, _dirs, files in os.walk(path):
        for entry in files:
            try:
                status = os.lstat(os.path.join(root, entry))
            except FileNotFoundError:
                continue  # removed while we walk: a running server recycles WAL
            apparent += status.st_size
            allocated += status.st_blocks * 512
    return apparent, allocated


class HostStorage:
    def exists(self, path: str) -> bool:
        """Whether anything is at `path` (a dangling link counts: it is not ours to replace)."""
        return os.path.lexists(path)

    def is_data_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def make_data_dir(self, path: str) -> None:
        """A new, empty data directory owned by the image's postgres user; its parents as needed."""
        os.makedirs(path, mode=0o700)
        os.chown(path, POSTGRES_UID, POSTGRES_UID)

    def remove(self, path: str) -> None:
        if os.path.lexists(path):
            shutil.rmtree(path)

    def sizes(self, path: str) -> Tuple[int, int]:
        """Apparent and allocated bytes of the files under `path`, in one walk."""
        return tree_sizes(path)

    def size(self, path: str) -> int:
        return tree_size(path)

    def free_bytes(self, root: str) -> Optional[int]:
        return shutil.disk_usage(root).free if os.path.isdir(root) else None

    def reflink_supported(self, root: str) -> bool:
        return reflink_supported(root)

    def copy_tree(self, source: str, target: str, reflink: str) -> None:
        copy_tree(source, target, reflink)

    @contextmanager
    def probe_dir(self, root: str) -> Iterator[str]:
        """A new directory of a unique name under `root` for the body; afterwards it is removed, and so are the
        directories made for it (root and its missing parents), so that the probe leaves nothing."""
        made, at = [], os.path.abspath(root)
        while not os.path.lexists(at):
            made.append(at)
            at = os.path.dirname(at)
        for attempt in range(3):
            os.makedirs(root, mode=0o700, exist_ok=True)
            try:
                probe = tempfile.mkdtemp(dir=root, prefix=".baseful-probe-")
                break
            except FileNotFoundError:  # another run's probe removed root just now: make it again
                if attempt == 2:
                    raise
        try:
            yield probe
        finally:
            os.rmdir(probe)
            for directory in made:  # deepest first; only while empty (another run may use it meanwhile)
                try:
                    os.rmdir(directory)
                except OSError:
                    break

    def migration_files(self, paths: Sequence[str]) -> List[MigrationFile]:
        """The SQL files `migrations` names (migrations.order says in which order), read whole: what runs is
        what was checksummed."""
        found = []
        for path in map(check_path, paths):
            if os.path.isdir(path):
                found.append((path, [os.path.join(path, entry) for entry in os.listdir(path)
                                     if os.path.isfile(os.path.join(path, entry))]))
            elif os.path.isfile(path):
                found.append((path, [path]))
            else:
                raise InputError("migrations", f"{path} is not a file or directory on the Docker host; give each SQL "
                                 "file or directory of SQL files by its absolute path there")
        result = []
        for name, path in order(found):
            if os.path.islink(path):
                # A checkout is the pull request's to shape: a link in it could name any file this root run can read.
                raise InputError("migrations", f"{path} is a symbolic link; migrations are read from regular files only")
            try:
                with open(path, "rb") as handle:
                    result.append(MigrationFile(name, path, handle.read()))
            except OSError as error:
                raise InputError("migrations", f"{path} cannot be read ({error.strerror})") from error
        return result

    def keep_file(self, path: str, data: bytes) -> None:
        """`data` at `path` (0600, its directory 0700), whole or not at all; a file there already stays."""
        if os.path.exists(path):
            return
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            os.remove(temporary)
            raise

    def read_kept(self, path: str) -> Optional[bytes]:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def forget_running_server(self, data_dir: str) -> None:
        """A file copy of a data directory must not claim its source's server runs in it."""
        pid_file = os.path.join(data_dir, "postmaster.pid")
        if os.path.exists(pid_file):
            os.remove(pid_file)

    def remove_file(self, data_dir: str, relative: str) -> None:
        path = os.path.join(data_dir, relative)
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)

    def empty_within(self, data_dir: str, relative_dirs: Sequence[str]) -> None:
        """Removes the files (never a link's target) under each of `relative_dirs` of a data directory, keeping the
        directories: a copy's server logs and statistics files, which may quote values it held. A path that leads out
        of `data_dir` is left alone."""
        root = os.path.realpath(data_dir)
        for relative in relative_dirs:
            directory = os.path.realpath(os.path.join(root, relative))
            if os.path.isabs(relative) or os.path.commonpath([root, directory]) != root or directory == root:
                continue
            for parent, _dirs, names in os.walk(directory):
                for name in names:
                    os.remove(os.path.join(parent, name))

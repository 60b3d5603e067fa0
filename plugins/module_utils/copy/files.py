# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data-directory copies on the host: copy-on-write clones and plain copies."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from typing import Tuple

from ansible_collections.baseful.branching.plugins.module_utils.errors import CopyFailed

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

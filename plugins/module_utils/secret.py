# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Password files under <state_dir>/secrets: 0600, owned by the image's postgres user, which reads
them through POSTGRES_PASSWORD_FILE at initdb."""

from __future__ import annotations

import os
from typing import Optional

POSTGRES_UID = 999  # the official image's postgres user


def write_secret(path: str, value: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    os.chmod(path, 0o600)
    os.chown(path, POSTGRES_UID, POSTGRES_UID)


def read_secret(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def remove_secret(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass

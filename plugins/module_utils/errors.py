# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors the engine raises; modules turn them into one-sentence failures."""

from __future__ import annotations


class BranchingError(Exception):
    """A failure the user can act on; its message is the whole report."""


class InputError(BranchingError):
    """A parameter value that is refused before anything is changed."""

    def __init__(self, parameter: str, message: str):
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}")


class PortTaken(InputError):
    """The port a container was to publish is bound by another process (Docker's answer at start)."""

    def __init__(self, port: int, message: str):
        self.port = port
        super().__init__("port", message)


class DockerUnavailable(BranchingError):
    """The Docker daemon cannot be reached."""


class CopyFailed(BranchingError):
    """A copy did not complete; the half-made branch is removed by the caller."""


class MigrationFailed(BranchingError):
    """A migration file failed on a branch's server; its transaction was rolled back."""

    def __init__(self, message: str):
        super().__init__(f"migrations: {message}")

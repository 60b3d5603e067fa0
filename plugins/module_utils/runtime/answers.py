# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker daemon's answers, as the one sentence they mean."""

from __future__ import annotations

from ansible_collections.baseful.branching.plugins.module_utils.errors import PortTaken


def explain(error: Exception) -> str:
    explanation = getattr(error, "explanation", None)
    return str(explanation or error).strip()


def refuse_taken_port(error: Exception, port: int, what: str = "the branch", parameter: str = "port") -> None:
    """Docker's answer when another process holds the published port."""
    explanation = explain(error)
    if "address already in use" in explanation or "port is already allocated" in explanation:
        raise PortTaken(port, f"{port} is taken by another process on the host, so {what} cannot start on it; "
                        f"stop that process or move {what} with {parameter}: <another free port>") from error

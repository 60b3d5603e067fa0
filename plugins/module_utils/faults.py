# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Injection points, in the manner of PostgreSQL's own: named places in a lifecycle where the
reliability suite kills the module with SIGKILL, to prove that the next run converges from there.

Inert unless the environment variable BASEFUL_INJECT_FAULT names the point: 'fill:copied' dies on
reaching it; 'copy@0.5' arms a timer on reaching it and dies half a second later while the step goes
on (a kill in the middle of a copy). The points are listed in tests/reliability/README.md.
"""

from __future__ import annotations

import os
import signal
import threading

ENVIRONMENT_VARIABLE = "BASEFUL_INJECT_FAULT"


def injection_point(name: str) -> None:
    wanted = os.environ.get(ENVIRONMENT_VARIABLE)
    if not wanted:
        return
    point, delay = wanted.split("@", 1) if "@" in wanted else (wanted, "")
    if point != name:
        return
    if delay:
        timer = threading.Timer(float(delay), os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    else:
        os.kill(os.getpid(), signal.SIGKILL)

# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port allocation: ports of port_range that no record holds and no other process has bound. The
store's UNIQUE(port) makes the final choice race-free (Store.reserve_branch)."""

from __future__ import annotations

import socket
from typing import Iterable, Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import BranchRecord


class Ports:
    def __init__(self, site):
        self.site = site

    def free(self) -> Iterable[int]:
        used = set(self.site.store.used_ports())
        placement = self.site.placement
        return (p for p in placement.port_range if p not in used and self.site.port_free(placement.bind_address, p))

    def check_free(self, port: int, exclude: Optional[BranchRecord], parameter: str = "port",
                   exclude_endpoint: Optional[str] = None) -> None:
        """Refuses a port another record holds (not `exclude`'s, nor `exclude_endpoint`'s: that database's
        endpoint) or another process has bound."""
        store = self.site.store
        holder = store.port_holder(port)
        mine = (exclude is not None and holder == f"branch {exclude.name!r} of database {exclude.database!r}") \
            or (exclude_endpoint is not None and holder == f"the endpoint of database {exclude_endpoint!r}")
        if holder is not None and not mine:
            raise InputError(parameter, f"{port} is already used by {holder}")
        address = self.site.placement.bind_address
        if not self.site.port_free(address, port):
            raise InputError(parameter, f"{port} is already taken on {address} by another process")


def port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True

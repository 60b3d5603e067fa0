# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module shares: the placement and Docker connection options and the run loop that
turns the service's outcome into a module result (changed, actions, diff) or one clear failure."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.baseful.branching.plugins.module_utils.errors import BranchingError, InputError
from ansible_collections.baseful.branching.plugins.module_utils.model import (
    parse_port_range,
    validate_docker_options,
    validate_network,
)
from ansible_collections.baseful.branching.plugins.module_utils.options import DOCKER_OPTIONS, PLACEMENT_OPTIONS
from ansible_collections.baseful.branching.plugins.module_utils.runtime.connection import (
    DOCKER_IMPORT_ERROR,
    HAS_DOCKER,
    DockerConnection,
)


def shared_argument_spec(**module_options) -> dict:
    """Placement and connection options (PLACEMENT_OPTIONS, also the doc fragment baseful.branching.placement)
    plus the module's own."""
    spec = {}
    for name, option in PLACEMENT_OPTIONS.items():
        spec[name] = {key: option[key] for key in ("type", "default", "aliases") if key in option}
        if "env" in option:
            spec[name]["fallback"] = (env_fallback, [option["env"]])
    spec.update(module_options)
    return spec


def run(module, operation, read_only: bool = False) -> None:
    """Builds the service from the module's options, runs `operation(service)` and exits."""
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker (Docker SDK for Python)"), exception=str(DOCKER_IMPORT_ERROR))
    from ansible_collections.baseful.branching.plugins.module_utils.runtime.docker import DockerRuntime
    from ansible_collections.baseful.branching.plugins.module_utils.service import Placement, Service

    params = module.params
    service = None
    try:
        _validate_bind_address(params["bind_address"])
        validate_network(params["network"])
        for parameter in ("state_dir", "data_root"):
            _validate_directory(parameter, params[parameter])
        validate_docker_options(params["docker_host"], params["api_version"], params["timeout"])
        placement = Placement(params["state_dir"], params["data_root"], params["network"], params["bind_address"],
                              parse_port_range(params["port_range"]))
        runtime = DockerRuntime(DockerConnection(**{name: params[name] for name in DOCKER_OPTIONS}), placement.state_dir)
        service = Service(placement, runtime, check_mode=module.check_mode or read_only)
        outcome = operation(service)
    except BranchingError as error:
        module.fail_json(msg=str(error))
    except Exception as error:  # noqa: BLE001 -- Docker or OS failures the engine did not anticipate
        module.fail_json(msg=f"{type(error).__name__}: {error}", exception=traceback.format_exc())
    finally:
        if service is not None:
            service.close()
    result = dict(changed=outcome.changed, actions=outcome.actions, **outcome.values)
    if module._diff and not read_only:
        result["diff"] = dict(before=outcome.before, after=outcome.after)
    failures = outcome.values.get("errors")
    if failures:  # partial work (expiry) is done and reported, and the task still fails
        module.fail_json(msg="; ".join(f"{f['database']}/{f['name']}: {f['error']}" for f in failures), **result)
    module.exit_json(**result)


def _validate_bind_address(value: str) -> None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise InputError("bind_address", f"{value!r} is not an IP address; use for example 127.0.0.1 (the default) "
                         "or 0.0.0.0 to listen on every interface") from None
    try:
        with socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((value, 0))
    except OSError as error:
        if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise InputError("bind_address", f"{value!r} is not an address of this host; use one of its own "
                             "addresses, 127.0.0.1 (the default) or 0.0.0.0") from None


SYSTEM_TREES = ("/proc", "/sys", "/dev")
MEMORY_TREE = "/dev/shm"  # tmpfs: a fair place for throwaway CI branches


def _validate_directory(parameter: str, path) -> None:
    """A directory the modules can create or use: absolute (a module's working directory is a temporary
    one), outside the kernel's trees, and with no file where a directory has to be."""
    if path is None and parameter == "data_root":
        return  # defaults to <state_dir>/data
    if not path or not os.path.isabs(path):
        raise InputError(parameter, f"{path!r} is not an absolute directory path; use for example /var/lib/baseful")
    real = os.path.realpath(path)
    for tree in SYSTEM_TREES:
        if (real == tree or real.startswith(tree + "/")) and not real.startswith(MEMORY_TREE + "/"):
            raise InputError(parameter, f"{path!r} is inside {tree}, which cannot hold data; use for example /var/lib/baseful")
    existing = real
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(parameter, f"{path!r} cannot be a directory: {existing} is a file")

# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker connection options, named and defaulted as in community.docker's modules, and the client
they make."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ansible_collections.baseful.branching.plugins.module_utils.errors import DockerUnavailable, InputError

try:
    import docker
    from docker.errors import APIError, DockerException
    from docker.tls import TLSConfig
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as import_error:  # the module reports missing_required_lib
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = import_error


@dataclass
class DockerConnection:
    """The connection options, named and defaulted as in community.docker's modules."""

    docker_host: str = "unix:///var/run/docker.sock"
    api_version: str = "auto"
    timeout: int = 60
    tls: bool = False
    validate_certs: bool = False
    ca_path: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None

    def client(self, timeout: Optional[int] = -1):
        """A connected client; timeout None is for long exec reads (a copy), -1 means the option's value."""
        timeout = self.timeout if timeout == -1 else timeout
        tls_config = None
        if self.tls or self.validate_certs:
            cert = (self.client_cert, self.client_key) if self.client_cert and self.client_key else None
            tls_config = TLSConfig(client_cert=cert, ca_cert=self.ca_path, verify=self.validate_certs)
        base_url = self.docker_host.replace("tcp://", "https://") if tls_config else self.docker_host
        try:
            client = docker.DockerClient(base_url=base_url, version=self.api_version, timeout=timeout,
                                         tls=tls_config or False)
            client.ping()
        except (DockerException, OSError, ValueError) as error:
            if isinstance(error, APIError) and error.status_code == 400 and self.api_version != "auto":
                raise InputError("api_version", f"{self.api_version!r} is refused by the Docker daemon at "
                                 f"{self.docker_host}; leave it at 'auto' or give a version the daemon supports") from error
            raise DockerUnavailable(f"docker_host: Docker is not reachable at {self.docker_host} ({error})") from error
        return client

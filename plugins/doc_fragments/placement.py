# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from plugins/module_utils/options.py by tests/unit/fragment.py: edit that, then run this.

from __future__ import annotations


class ModuleDocFragment:
    # Placement of databases and branches on the Docker host, and the Docker connection
    # (named and behaving as in community.docker's modules).
    DOCUMENTATION = r"""
options:
  state_dir:
    description:
      - Directory holding the metadata file C(state.db), the per-database password files and the locks.
      - Created with mode C(0700); the metadata file and the secrets are C(0600).
      - Must be an absolute path outside C(/proc), C(/sys) and C(/dev).
    type: path
    default: /var/lib/baseful
  data_root:
    description:
      - Directory under which each branch's data directory C(<data_root>/<database>/<branch>) lives, and each database's
        manifests C(<data_root>/<database>/.baseful/) from which lost metadata is rebuilt.
      - Defaults to C(<state_dir>/data). Must be an absolute path outside C(/proc), C(/sys) and C(/dev).
    type: path
  network:
    description:
      - Docker network the branch containers join. Created if missing.
    type: str
    default: baseful
  bind_address:
    description:
      - Host address the branch ports are published on, one of this host's own addresses.
      - Use C(0.0.0.0) only when other hosts must reach the branches.
    type: str
    default: 127.0.0.1
  port_range:
    description:
      - Host ports branches are given from, as C(LOW-HIGH). Ports held by other processes are skipped.
    type: str
    default: 54320-54999
  docker_host:
    description:
      - URL or Unix socket path of the Docker daemon, as in community.docker's modules.
      - If not given, the environment variable E(DOCKER_HOST) is used, else the default.
      - 'The modules run on the Docker host: the daemon must see this host''s O(data_root), since branches are bind
        mounts of it. A database is refused when it does not (a daemon on another machine or in a VM).'
    type: str
    default: unix:///var/run/docker.sock
    aliases:
      - docker_url
  api_version:
    description:
      - Docker API version to use; V(auto) negotiates it. Environment variable E(DOCKER_API_VERSION).
    type: str
    default: auto
    aliases:
      - docker_api_version
  timeout:
    description:
      - Seconds to wait for a response from the Docker API, 1 to 86400. Environment variable E(DOCKER_TIMEOUT).
    type: int
    default: 60
  tls:
    description:
      - Connect to the Docker daemon over TLS without verifying its certificate. Environment variable E(DOCKER_TLS).
    type: bool
    default: false
  validate_certs:
    description:
      - Connect over TLS and verify the daemon's certificate. Environment variable E(DOCKER_TLS_VERIFY).
    type: bool
    default: false
    aliases:
      - tls_verify
  ca_path:
    description:
      - CA certificate used to verify the Docker daemon.
    type: path
    aliases:
      - ca_cert
      - tls_ca_cert
      - cacert_path
  client_cert:
    description:
      - Client certificate for TLS to the Docker daemon.
    type: path
    aliases:
      - tls_client_cert
      - cert_path
  client_key:
    description:
      - Client key for TLS to the Docker daemon.
    type: path
    aliases:
      - tls_client_key
      - key_path
requirements:
  - docker (Docker SDK for Python) >= 7.0
  - "The modules run on the Docker host, as root or with C(become: true), because they manage data directories owned by uid 999."
notes:
  - All modules of the collection are in the action group C(baseful.branching.branching), so
    C(module_defaults) can set these options once for a play.
"""

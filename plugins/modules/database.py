#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to baseful.branching
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: database
short_description: Create or remove a branchable PostgreSQL database on a Docker host
version_added: 0.1.0
description:
  - A database is a named PostgreSQL project with an image (its major version), credentials and branches.
  - V(present) creates the Docker network, a generated password kept C(0600) under O(state_dir), and the
    C(production) branch, running, default and protected. With O(source_url), production is seeded from
    any reachable PostgreSQL server by dump and restore.
  - V(absent) removes every branch container, data directory, password file and record of the database.
author:
  - baseful.branching maintainers (@baseful-branching)
extends_documentation_fragment:
  - baseful.branching.attributes
  - baseful.branching.placement
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - Name of the database, also the name of the PostgreSQL database inside every branch.
      - 1 to 31 characters, a lower-case letter first, then lower-case letters, digits, C(_) or C(-).
    type: str
    required: true
  state:
    description:
      - Whether the database should exist.
    type: str
    choices: [present, absent]
    default: present
  image:
    description:
      - Container image of the PostgreSQL server; it fixes the major version of every branch.
      - It must contain PostgreSQL and follow the official image's contract (PGDATA, POSTGRES_USER,
        POSTGRES_PASSWORD_FILE, POSTGRES_DB).
    type: str
    default: postgres:18
  user:
    description:
      - Superuser created in the database and used in the connection URLs.
    type: str
    default: postgres
  password:
    description:
      - Password of O(user). Generated (32 URL-safe characters) and kept if omitted.
      - Changing the password of an existing database is refused.
    type: str
  source_url:
    description:
      - A C(postgresql://) URL of any PostgreSQL server reachable from the Docker host, as the host sees it.
        The production branch is seeded from it with pg_dump and pg_restore, run with this database's image.
      - Objects land owned by O(user); roles of the external server are not copied.
      - Used only when the database is created.
    type: str
  endpoint:
    description:
      - Whether the database has an endpoint, a PgBouncer container (C(baseful-<name>-endpoint-<random>)) on one
        stable port through which the database's name reaches its default branch and C(<name>.<branch>) reaches
        each branch. A switch of the default branch (M(baseful.branching.branch) O(baseful.branching.branch#module:state=default))
        repoints it online, so an application configured once with RV(database.endpoint.url) follows every switch.
      - V(false) on an existing database removes its endpoint; its branches are not touched.
      - The endpoint guide of this collection's documentation (C(docs/docsite/rst/endpoint.rst)) says how routes,
        pooling, authentication and the switch work.
    type: bool
    default: true
  endpoint_port:
    description:
      - Host port of the endpoint, published on O(bind_address). Allocated from O(port_range) if omitted, and then
        pinned in the record, so it survives restarts and repairs. Changing it moves the endpoint.
    type: int
  endpoint_image:
    description:
      - Image of the endpoint. Any image with C(pgbouncer) 1.21 or later on its PATH serves; the collection sets its
        entry point, command and a non-root user and mounts its own configuration read-only.
      - When it is neither on the Docker host nor can be pulled, the database is refused and nothing is created;
        give an image the host has, or O(endpoint=false).
      - If not given, the environment variable E(BASEFUL_ENDPOINT_IMAGE) is used (a mirror of the default in a
        registry of your own), else the default, CloudNativePG's PgBouncer image.
    type: str
    default: ghcr.io/cloudnative-pg/pgbouncer:1.25.2
  mask:
    description:
      - Masking rules every new branch of the database gets, but C(production) and a branch that says
        O(baseful.branching.branch#module:unmasked=true); a branch's own O(baseful.branching.branch#module:mask) adds
        to them and wins column by column. The rules are those of that option.
      - Changing them on an existing database changes what later copies get; branches that exist keep what their
        data has had. Omitted, the rules are left as they are; V({}) removes them.
    type: dict
seealso:
  - module: baseful.branching.branch
  - module: baseful.branching.branch_info
"""

EXAMPLES = r"""
- name: A database with an empty production branch
  baseful.branching.database:
    name: inventory
    image: postgres:17

- name: A database seeded from a shared server
  baseful.branching.database:
    name: inventory
    source_url: "postgresql://reader:{{ vault_reader_password }}@db.internal:5432/inventory"

- name: Remove the database, all its branches and their data
  baseful.branching.database:
    name: inventory
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: [create_database, create_branch]
database:
  description: The database after the run.
  returned: when O(state=present)
  type: dict
  contains:
    name:
      description: Name of the database.
      type: str
    image:
      description: Image of its branches.
      type: str
    pg_major:
      description: PostgreSQL major version of the image.
      type: int
    user:
      description: Superuser name.
      type: str
    default_branch:
      description: Name of the default branch.
      type: str
    branches:
      description: Names of its branches.
      type: list
      elements: str
    endpoint:
      description:
        - The database's endpoint; null when O(endpoint=false).
        - C(url) reaches the default branch, whichever it is; C(status) is its container's (running, stopped, missing).
      type: dict
      contains:
        host:
          description: Address a client on the Docker host dials.
          type: str
        port:
          description: The endpoint's pinned host port.
          type: int
        url:
          description: Connection URL of the default branch through the endpoint.
          type: str
        status:
          description: The endpoint container's status.
          type: str
        container_name:
          description: The endpoint's container.
          type: str
        image:
          description: The endpoint's image.
          type: str
    mask:
      description: The masking rules its new branches get, column to rule name (an C(sql:) rule shows as V(sql)).
      type: dict
  sample: {name: inventory, image: "postgres:17", pg_major: 17, user: postgres, default_branch: production,
           branches: [production], endpoint: {host: 127.0.0.1, port: 54321, status: running,
           url: "postgresql://postgres:...@127.0.0.1:54321/inventory"}}
branch:
  description: The production branch, when it was created or repaired; the fields are those of M(baseful.branching.branch).
  returned: when the production branch was created or repaired
  type: dict
copy_result:
  description: How production was seeded from O(source_url).
  returned: when a copy ran
  type: dict
  sample: {method: dump, seconds: 1.42, bytes: 48211968, ready_seconds: 2.9}
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.baseful.branching.plugins.module_utils.common import run, shared_argument_spec
from ansible_collections.baseful.branching.plugins.module_utils.endpoint.config import DEFAULT_ENDPOINT_IMAGE
from ansible_collections.baseful.branching.plugins.module_utils.plan import EndpointRequest

# The module's options; a unit test holds DOCUMENTATION to them.
ARGUMENT_SPEC = shared_argument_spec(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    image=dict(type="str", default="postgres:18"),
    user=dict(type="str", default="postgres"),
    password=dict(type="str", no_log=True),
    source_url=dict(type="str", no_log=True),
    endpoint=dict(type="bool", default=True),
    endpoint_port=dict(type="int"),
    endpoint_image=dict(type="str", default=DEFAULT_ENDPOINT_IMAGE, fallback=(env_fallback, ["BASEFUL_ENDPOINT_IMAGE"])),
    mask=dict(type="dict"),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    p = module.params
    endpoint = EndpointRequest(p["endpoint"], p["endpoint_port"], p["endpoint_image"])
    run(module, lambda service: service.apply_database(p["name"], p["state"], p["image"], p["user"], p["password"],
                                                       p["source_url"], endpoint, p["mask"]))


if __name__ == "__main__":
    main()

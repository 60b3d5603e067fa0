#!/usr/bin/env bash
# Prints the image to use for PostgreSQL MAJOR: the official postgres:MAJOR where it is present or
# can be pulled, else the Debian-built stand-in (built once per machine by build.sh). With `hardened`,
# always the stand-in initialised with scram-sha-256 for every host connection. `pgbouncer` prints the
# endpoint's image the same way: the collection's default endpoint_image, else the stand-in.
set -euo pipefail
major="${1:?usage: ensure.sh MAJOR [hardened] | ensure.sh pgbouncer}"
variant="${2:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
official="postgres:$major"
if [ "$major" = pgbouncer ]; then
	official="$(sed -n 's/^DEFAULT_ENDPOINT_IMAGE = "\(.*\)"$/\1/p' "$here/../../plugins/module_utils/endpoint/config.py")"
fi
if [ -z "$variant" ] && { docker image inspect "$official" >/dev/null 2>&1 || docker pull -q "$official" >/dev/null 2>&1; }; then
	echo "$official"
else
	"$here/build.sh" "$major" ${variant:+"$variant"} | tail -n 1
fi

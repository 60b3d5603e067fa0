#!/usr/bin/env bash
# Prints the image to use for PostgreSQL MAJOR: the official postgres:MAJOR where it is present or
# can be pulled, else the Debian-built stand-in (built once per machine by build.sh). With `hardened`,
# always the stand-in initialised with scram-sha-256 for every host connection.
set -euo pipefail
major="${1:?usage: ensure.sh MAJOR [hardened]}"
variant="${2:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "$variant" ] && { docker image inspect "postgres:$major" >/dev/null 2>&1 || docker pull -q "postgres:$major" >/dev/null 2>&1; }; then
	echo "postgres:$major"
else
	"$here/build.sh" "$major" ${variant:+"$variant"} | tail -n 1
fi

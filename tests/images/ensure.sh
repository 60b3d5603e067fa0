#!/usr/bin/env bash
# Prints the image to use for PostgreSQL MAJOR: the official postgres:MAJOR where it is present or
# can be pulled, else the Debian-built stand-in (built once per machine by build.sh).
set -euo pipefail
major="${1:?usage: ensure.sh MAJOR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if docker image inspect "postgres:$major" >/dev/null 2>&1 || docker pull -q "postgres:$major" >/dev/null 2>&1; then
	echo "postgres:$major"
else
	"$here/build.sh" "$major" >&2
	echo "baseful/postgres:$major-debian"
fi

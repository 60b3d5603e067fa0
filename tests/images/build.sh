#!/usr/bin/env bash
# Builds, from Debian packages, the stand-ins of the images the collection runs, for machines that cannot pull
# from a registry. Built once per machine, cached by tag; the tag carries a digest of this script and the entry
# point, so a change to either builds anew.
#   tests/images/build.sh 15            -> baseful/postgres:15-debian-<digest> (bookworm), which behaves like the
#                                          official postgres:15 image
#   tests/images/build.sh 17            -> baseful/postgres:17-debian-<digest> (trixie)
#   tests/images/build.sh 18            -> baseful/postgres:18-debian-<digest> (forky; the 18 layout:
#                                          PGDATA /var/lib/postgresql/18/docker, VOLUME /var/lib/postgresql)
#   tests/images/build.sh 17 hardened   -> baseful/postgres:17-hardened-<digest>: the same server, initialised
#                                          with scram-sha-256 for every host connection, 127.0.0.1 included
#   tests/images/build.sh pgbouncer     -> baseful/pgbouncer:trixie-<digest> (PgBouncer 1.24), the endpoint's
#                                          stand-in: pgbouncer on PATH, and an entry point of its own that refuses
#                                          to run, as the collection sets entry point, command and user itself
#   tests/images/build.sh pgbouncer forky -> baseful/pgbouncer:forky-<digest> (PgBouncer 1.26)
# It prints the tag on its last line, and tags the same image baseful/<name>:<major>-<variant> (or
# baseful/pgbouncer:<suite>) too: a stable name for what outlives one build (the demo records its images by name).
set -euo pipefail

major="${1:?usage: build.sh MAJOR [hardened] | build.sh pgbouncer [trixie|forky]}"
variant="${2:-debian}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
digest="$(cat "$here/build.sh" "$here/docker-entrypoint.sh" | sha256sum | cut -c1-10)"
if [ "$major" = pgbouncer ]; then
	suite="${2:-trixie}"
	case "$suite" in trixie|forky) ;; *) echo "build.sh: pgbouncer is built from trixie (1.24) or forky (1.26), not $suite" >&2; exit 2 ;; esac
	tag="baseful/pgbouncer:${suite}-${digest}" stable="baseful/pgbouncer:${suite}" packages=(pgbouncer)
else
	case "$major" in
		15) suite=bookworm ;;
		17) suite=trixie ;;
		18) suite=forky ;;
		*) echo "build.sh: no Debian suite ships PostgreSQL $major as its default (15: bookworm, 17: trixie, 18: forky)" >&2; exit 2 ;;
	esac
	case "$variant" in debian|hardened) ;; *) echo "build.sh: variant is debian or hardened, not $variant" >&2; exit 2 ;; esac
	base="baseful/postgres:${major}-debian-${digest}"
	tag="baseful/postgres:${major}-${variant}-${digest}" stable="baseful/postgres:${major}-${variant}"
	packages=("postgresql-$major")
fi
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "$tag is built already" >&2
	docker tag "$tag" "$stable"
	echo "$tag"
	exit 0
fi

if [ "$variant" = hardened ]; then
	"$here/build.sh" "$major" >/dev/null
	# An operator's hardening: initdb's own rules for 127.0.0.1 and ::1 (and replication there) ask for a
	# password, as the official image's POSTGRES_INITDB_ARGS allows; the local socket stays as initdb makes it.
	printf 'FROM %s\nENV POSTGRES_INITDB_ARGS="--auth-host=scram-sha-256"\n' "$base" \
		| docker build -q -t "$tag" -t "$stable" - >/dev/null
	echo "built $tag" >&2
	echo "$tag"
	exit 0
fi

for tool in debootstrap docker; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool is required (apt-get install $tool)" >&2; exit 2; }
done

rootfs="$(mktemp -d /var/tmp/baseful-rootfs-"$major".XXXXXX)"
trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"  # mktemp makes it 0700, which would lock uid 999 out of /

script=()
if [ "$suite" = forky ] && [ ! -e /usr/share/debootstrap/scripts/forky ]; then
	script=(/usr/share/debootstrap/scripts/sid)  # the testing suite's script, for a debootstrap older than forky
fi
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" "${script[@]}" >&2
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
# uid/gid 999 as in the official image, created before the package would pick another.
in_root groupadd --system --gid 999 postgres
in_root useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
mkdir -p "$rootfs/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' > "$rootfs/etc/postgresql-common/createcluster.d/no-main.conf"
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
# A mirror may serve a testing suite whose Release file has passed its Valid-Until date; its packages are still
# the ones it signed.
in_root apt-get -o Acquire::Check-Valid-Until=false update -qq
# postgresql-common's maintainer scripts run systemd-tmpfiles, which needs /proc (forky's does).
mount -t proc proc "$rootfs/proc"
in_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
umount "$rootfs/proc"
in_root apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/sbin/policy-rc.d
if [ "$major" = pgbouncer ]; then
	# The package's own configuration and service are not what the collection runs: it mounts its own
	# configuration and names the command. The entry point says so if anything runs the image as it is.
	printf '#!/bin/sh\necho "this stand-in runs only the command given to it (pgbouncer <config>)" >&2\nexit 64\n' \
		> "$rootfs/usr/local/bin/pgbouncer-entrypoint"
	chmod 0755 "$rootfs/usr/local/bin/pgbouncer-entrypoint"
	tar -C "$rootfs" --numeric-owner -c . | docker import - "$tag-rootfs" >&2
	docker build -q -t "$tag" -t "$stable" - >&2 <<DOCKERFILE
FROM $tag-rootfs
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER postgres
EXPOSE 6432
ENTRYPOINT ["pgbouncer-entrypoint"]
DOCKERFILE
	docker rmi "$tag-rootfs" >/dev/null 2>&1 || true
	echo "built $tag" >&2
	echo "$tag"
	exit 0
fi
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$rootfs/usr/share/postgresql/$major/postgresql.conf.sample"
install -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$rootfs/docker-entrypoint-initdb.d"
# The official image's layout: through 17 PGDATA is /var/lib/postgresql/data and is the VOLUME; from 18
# on PGDATA is /var/lib/postgresql/<major>/docker and the VOLUME is /var/lib/postgresql above it.
install -d -o 999 -g 999 -m 1777 "$rootfs/var/lib/postgresql"
install -d -o 999 -g 999 -m 3777 "$rootfs/var/run/postgresql"
if [ "$major" -ge 18 ]; then
	pgdata="/var/lib/postgresql/$major/docker" volume=/var/lib/postgresql
else
	pgdata=/var/lib/postgresql/data volume=/var/lib/postgresql/data
	install -d -o 999 -g 999 -m 1777 "$rootfs$pgdata"
fi

# docker import takes the file system; the image's metadata comes from a small Dockerfile, as the official
# image declares it (import cannot set STOPSIGNAL).
tar -C "$rootfs" --numeric-owner -c . | docker import - "$tag-rootfs" >&2
docker build -q -t "$tag" -t "$stable" - >&2 <<DOCKERFILE
FROM $tag-rootfs
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/$major/bin
ENV PG_MAJOR=$major
ENV PGDATA=$pgdata
ENV LANG=C.UTF-8
VOLUME $volume
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
DOCKERFILE
docker rmi "$tag-rootfs" >/dev/null 2>&1 || true  # the built image keeps its layer
echo "built $tag" >&2
echo "$tag"

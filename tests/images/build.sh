#!/usr/bin/env bash
# Builds a PostgreSQL image from Debian packages that behaves like the official postgres:<major>
# image, for machines that cannot pull from a registry. Built once per machine, cached by tag.
#   tests/images/build.sh 17   -> baseful/postgres:17-debian (trixie)
#   tests/images/build.sh 15   -> baseful/postgres:15-debian (bookworm)
set -euo pipefail

major="${1:?usage: build.sh MAJOR}"
case "$major" in
	15) suite=bookworm ;;
	17) suite=trixie ;;
	*) echo "build.sh: no Debian suite ships PostgreSQL $major as its default (15: bookworm, 17: trixie)" >&2; exit 2 ;;
esac
tag="baseful/postgres:${major}-debian"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "$tag is built already"
	exit 0
fi
for tool in debootstrap docker; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool is required (apt-get install $tool)" >&2; exit 2; }
done

rootfs="$(mktemp -d /var/tmp/baseful-rootfs-"$major".XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"  # mktemp makes it 0700, which would lock uid 999 out of /

debootstrap --variant=minbase "$suite" "$rootfs" "$mirror"
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
# uid/gid 999 as in the official image, created before the package would pick another.
in_root groupadd --system --gid 999 postgres
in_root useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
mkdir -p "$rootfs/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' > "$rootfs/etc/postgresql-common/createcluster.d/no-main.conf"
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
in_root apt-get update -qq
in_root apt-get install -y -qq --no-install-recommends "postgresql-$major" >/dev/null
in_root apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/sbin/policy-rc.d
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$rootfs/usr/share/postgresql/$major/postgresql.conf.sample"
install -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$rootfs/docker-entrypoint-initdb.d" "$rootfs/var/lib/postgresql/data"
chown -R 999:999 "$rootfs/var/lib/postgresql"

tar -C "$rootfs" --numeric-owner -c . | docker import \
	--change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	--change "ENV PG_MAJOR=$major" \
	--change 'ENV PGDATA=/var/lib/postgresql/data' \
	--change 'ENV LANG=C.UTF-8' \
	--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
	--change 'CMD ["postgres"]' \
	--change 'EXPOSE 5432' \
	- "$tag"
echo "built $tag"

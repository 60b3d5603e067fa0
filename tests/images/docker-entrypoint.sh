#!/usr/bin/env bash
# Entry point for the Debian-built test images. It honours the contract of the official
# postgres image (PGDATA, POSTGRES_USER / POSTGRES_PASSWORD(_FILE) / POSTGRES_DB,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, /docker-entrypoint-initdb.d, initdb only on
# an empty data directory, server as uid 999) so the collection cannot tell it from postgres:N.
set -Eeo pipefail

file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
		echo >&2 "error: both $var and $fileVar are set (but are exclusive)"
		exit 1
	fi
	local val="$def"
	if [ -n "${!var:-}" ]; then
		val="${!var}"
	elif [ -n "${!fileVar:-}" ]; then
		val="$(< "${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

process_sql() {
	PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

init_cluster() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	# As the official image: the host rule's method is the server's password_encryption unless set.
	local auth="${POSTGRES_HOST_AUTH_METHOD:-}"
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
		echo >&2 'error: database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE)'
		exit 1
	fi
	ls /docker-entrypoint-initdb.d/ >/dev/null
	# The password goes through a pipe, never a command line; the arguments are word-split as the official
	# image's eval does.
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
	[ -n "$auth" ] || auth="$(postgres -C password_encryption)"
	printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
	# Needed where POSTGRES_INITDB_ARGS asks for a password on the local socket too.
	export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
	if [ "$POSTGRES_DB" != postgres ]; then
		process_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh) if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
			*.sql) process_sql --dbname "$POSTGRES_DB" -f "$f" ;;
			*) ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD POSTGRES_PASSWORD
}

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
	if [ "$(id -u)" = 0 ]; then
		mkdir -p "$PGDATA" /var/run/postgresql
		chmod 700 "$PGDATA"
		find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
		chown postgres:postgres /var/run/postgresql
		chmod 3775 /var/run/postgresql
		exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
	fi
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		init_cluster
	fi
fi

exec "$@"

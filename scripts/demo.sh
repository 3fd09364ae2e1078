#!/usr/bin/env bash
# A throwaway demonstration of pg_walvault on a fresh Debian bookworm
# machine, as root: installs what it needs, builds and installs the
# extension, starts a temporary cluster archiving through pg_walvault under
# a pgbench load, prints the views, recovers a copy of the cluster from a
# base backup and the archive with pg_walvault_restore -j 4 as
# restore_command (by its full path: PostgreSQL's bindir is not on the
# server's PATH), then stops and removes both.  KEEP=1 leaves the clusters
# running (their directory is printed).
#
#   bash scripts/demo.sh        # archive into a directory
#   bash scripts/demo.sh s3     # archive into an object store: a local Ceph
#                               # RGW started by scripts/rgw.sh (a few
#                               # seconds), restore with -u
set -euo pipefail

MODE=${1:-directory}
case $MODE in
	directory | s3) ;;
	*) echo "usage: $0 [s3]" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
DEMO_USER=${DEMO_USER:-postgres}
PORT=${PORT:-54321}
bindir=$($PG_CONFIG --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)

if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: it installs packages and the extension" >&2
	exit 1
fi
bash "$top/scripts/install-deps.sh"
make -s -C "$top" PG_CONFIG="$PG_CONFIG"
make -s -C "$top" PG_CONFIG="$PG_CONFIG" install >/dev/null

demo=$(mktemp -d /tmp/pg_walvault-demo.XXXXXX)
chown "$DEMO_USER" "$demo"
as_user() { su "$DEMO_USER" -s /bin/bash -c "$*"; }
cleanup() {
	if [ "${KEEP:-0}" != 1 ]; then
		as_user "'$bindir/pg_ctl' -D '$demo/data' -m fast stop" >/dev/null 2>&1 || true
		as_user "'$bindir/pg_ctl' -D '$demo/restored' -m fast stop" >/dev/null 2>&1 || true
		[ "$MODE" = s3 ] && bash "$top/scripts/rgw.sh" stop "$demo/rgw" >/dev/null 2>&1
		rm -rf "$demo"
	fi
}
trap cleanup EXIT

# Where files go: a directory, or an S3 bucket of a local RGW, whose keys
# the server gets from its environment as a DBA's would from
# /etc/postgresql/15/main/environment.
if [ "$MODE" = s3 ]; then
	echo "== starting a local Ceph RGW (scripts/rgw.sh)"
	bash "$top/scripts/rgw.sh" start "$demo/rgw" >/dev/null
	# shellcheck disable=SC1091
	. "$demo/rgw/env"
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	export AWS_EC2_METADATA_DISABLED=true
	as_user() { su "$DEMO_USER" -s /bin/bash -c "AWS_ACCESS_KEY_ID='$AWS_ACCESS_KEY_ID' AWS_SECRET_ACCESS_KEY='$AWS_SECRET_ACCESS_KEY' AWS_EC2_METADATA_DISABLED=true $*"; }
	url="s3://$RGW_BUCKET/demo"
	target="pg_walvault.archive_url = '$url'
pg_walvault.s3_endpoint = '$RGW_ENDPOINT'
pg_walvault.s3_uri_style = 'path'"
	source_opts="-u $url --s3-endpoint $RGW_ENDPOINT --s3-uri-style path"
else
	target="pg_walvault.archive_directory = '$demo/archive'"
	source_opts="-d $demo/archive"
fi

as_user "'$bindir/initdb' -D '$demo/data' -A trust >/dev/null && mkdir '$demo/archive'"
cat >>"$demo/data/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$demo'
listen_addresses = ''
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
$target
pg_walvault.max_workers = 4
pg_walvault.compression = 'lz4'
pg_walvault.stats_interval = '1s'
CONF
as_user "'$bindir/pg_ctl' -D '$demo/data' -l '$demo/server.log' -w start" >/dev/null
psql_demo() { as_user "'$bindir/psql' -h '$demo' -p $PORT -d postgres -X $*"; }

psql_demo "-q -c 'CREATE EXTENSION pg_walvault'"
echo "== pgbench: initializing and running 20 seconds of load"
as_user "'$bindir/pgbench' -h '$demo' -p $PORT -i -s 20 -q postgres" >/dev/null 2>&1
# the base backup the recovery at the end starts from (its WAL: the archive)
as_user "'$bindir/pg_basebackup' -h '$demo' -p $PORT -D '$demo/restored' -X none -c fast"
as_user "'$bindir/pgbench' -h '$demo' -p $PORT -T 20 -c 4 postgres" | grep -E '^(tps|number of transactions actually)'
psql_demo "-q -c 'SELECT pg_switch_wal()'" >/dev/null
# wait (at most 30 s) until the archive has caught up
for _ in $(seq 150); do
	[ "$(psql_demo "-At -c 'SELECT pending_count + in_progress_count FROM pg_stat_walvault'")" = 0 ] && break
	sleep 0.2
done

echo "== pg_stat_walvault"
psql_demo "-x -c 'SELECT * FROM pg_stat_walvault'"
echo "== pg_stat_walvault_workers"
psql_demo "-c 'SELECT worker_id, pid, role, state, current_file, files_archived, bytes_archived, failures, restarts FROM pg_stat_walvault_workers'"
echo "== pg_stat_walvault_history (last 10 samples)"
psql_demo "-c 'SELECT sample_time, wal_bytes, archived_count, archived_bytes, pending_count, archive_lag_bytes, round(archived_bytes_per_sec) AS archived_bps FROM pg_stat_walvault_history ORDER BY sample_time DESC LIMIT 10'"
if [ "$MODE" = s3 ]; then
	echo "== pg_stat_walvault_store"
	psql_demo "-x -c 'SELECT * FROM pg_stat_walvault_store'"
	newest=$(psql_demo "-At -c 'SELECT last_archived_wal FROM pg_stat_walvault'")
else
	echo "== archive directory: $(ls "$demo/archive" | wc -l) files (lz4), $(du -sm --apparent-size "$demo/archive" | cut -f1) MB"
	newest=$(ls "$demo/archive" | sort | tail -1)
fi
as_user "'$bindir/pg_walvault_restore' -v $source_opts '${newest%.lz4}' '$demo/restored.seg'"

echo "== point-in-time recovery of a copy: the base backup and the archive, restore_command with -j 4"
expected=$(psql_demo "-At -c 'SELECT count(*), sum(delta) FROM pgbench_history'")
cat >>"$demo/restored/postgresql.conf" <<CONF
port = $((PORT + 1))
archive_mode = off
restore_command = '$bindir/pg_walvault_restore -j 4 $source_opts %f %p'
CONF
echo "restore_command = '$bindir/pg_walvault_restore -j 4 $source_opts %f %p'"
as_user "touch '$demo/restored/recovery.signal'"
as_user "'$bindir/pg_ctl' -D '$demo/restored' -l '$demo/restored.log' -w start" >/dev/null
psql_restored() { as_user "'$bindir/psql' -h '$demo' -p $((PORT + 1)) -d postgres -X $*"; }
for _ in $(seq 600); do
	[ "$(psql_restored "-At -c 'SELECT pg_is_in_recovery()'")" = f ] && break
	sleep 0.2
done
grep -E 'redo done|archive recovery complete' "$demo/restored.log" | sed 's/^/    /'
got=$(psql_restored "-At -c 'SELECT count(*), sum(delta) FROM pgbench_history'")
echo "pgbench_history (count|sum of delta): primary $expected, recovered copy $got"
[ "$got" = "$expected" ] || { echo "the recovered copy differs" >&2; exit 1; }
[ "${KEEP:-0}" = 1 ] && echo "clusters left running in $demo (ports $PORT and $((PORT + 1)))"
exit 0

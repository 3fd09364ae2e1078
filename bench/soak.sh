#!/usr/bin/env bash
#
# bench/soak.sh -- nothing is lost while processes die and the pool changes.
#
# A cluster archiving through pg_walvault runs a pgbench load for DURATION
# seconds.  Meanwhile:
#   - every KILL_MIN..KILL_MAX seconds a random process of ours (the
#     coordinator, the collector, an archive worker, or the archiver while
#     it runs our callback) is killed with SIGKILL; the postmaster treats
#     that as a crash and restarts the whole cluster, so this is also a
#     crash-restart test;
#   - every POOL_EVERY seconds min_workers and max_workers are set to random
#     values (0..8) and the server is reloaded;
#   - every COMPRESSION_EVERY seconds the compression changes (COMPRESSIONS).
# Then pgbench stops, the server is shut down cleanly (its archiver archives
# what is left), and every segment the server marked archived (.done) is
# restored from the archive with pg_walvault_restore (whatever it was
# compressed with) and compared byte for byte with pg_wal.  wal_keep_size
# keeps every segment in pg_wal for that.
#
# Not part of CI: it takes DURATION plus a few minutes.  Runnable as root
# (the server runs as postgres) or as an ordinary user.  The report goes to
# bench/results/soak-*.md.  Exit status 3 if anything was lost.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

record_knobs DURATION KILL_MIN KILL_MAX POOL_EVERY COMPRESSIONS COMPRESSION_EVERY SCALE CLIENTS PG_BINDIR PORT BENCH_DIR KEEP SEED
DURATION=${DURATION:-600}
KILL_MIN=${KILL_MIN:-20}
KILL_MAX=${KILL_MAX:-40}
POOL_EVERY=${POOL_EVERY:-10}
COMPRESSIONS=${COMPRESSIONS:-off lz4 zstd:1 gzip:1}
COMPRESSION_EVERY=${COMPRESSION_EVERY:-60}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-4}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54700}
KEEP=${KEEP:-0}
SEED=${SEED:-$$}

for k in DURATION KILL_MIN KILL_MAX POOL_EVERY COMPRESSION_EVERY SCALE CLIENTS SEED; do
	is_uint "${!k}" || die "$k must be a non-negative integer"
done
((KILL_MIN >= 1 && KILL_MAX >= KILL_MIN)) || die "need 1 <= KILL_MIN <= KILL_MAX"
read -r -a COMPRESSION_LIST <<<"$COMPRESSIONS"
RANDOM=$SEED

setup_as_pg server
check_pg_bindir initdb pg_ctl psql postgres pg_config pgbench pg_isready pg_walvault_restore
[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)"
CMDLINE="${SET_KNOBS}bash bench/soak.sh"
describe_machine
make_work_dir soak
give_work_dir_to_pg

DATA=$WORK/data
ARCHIVE=$WORK/archive
LOG=$WORK/server.log
as_pg mkdir -p "$ARCHIVE"
as_pg "$PG_BINDIR/initdb" -D "$DATA" -A trust -N >/dev/null || die "initdb failed"
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
unix_socket_directories = '$WORK'
listen_addresses = ''
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_directory = '$ARCHIVE'
pg_walvault.stats_interval = '1s'
max_worker_processes = 16
restart_after_crash = on
wal_keep_size = '1TB'
max_wal_size = '4GB'
log_line_prefix = '%m [%p] %b '
EOF

start_server() {
	as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 300 start >/dev/null || die "server did not start (see $LOG)"
	server_started "$DATA"
}
set_conf() { # lines appended to postgresql.conf, then reload
	printf '%s\n' "$@" >>"$DATA/postgresql.conf"
	as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" reload >/dev/null 2>&1 || true
}
wait_ready() { # until the server accepts connections again (after a crash)
	local i
	for ((i = 0; i < 600; i++)); do
		as_pg "$PG_BINDIR/pg_isready" -q -h "$WORK" -p "$PORT" && return 0
		sleep 0.2
	done
	die "the server did not come back (see $LOG)"
}

log "soak: $DURATION s, a SIGKILL every $KILL_MIN-$KILL_MAX s, pool change every $POOL_EVERY s, compression change every $COMPRESSION_EVERY s (seed $SEED)"
start_server
psql_run -c 'CREATE EXTENSION pg_walvault'
as_pg "$PG_BINDIR/pgbench" -h "$WORK" -p "$PORT" -i -q -s "$SCALE" postgres >/dev/null 2>&1 || die "pgbench -i failed"

# the load: pgbench again and again, through every crash
as_pg touch "$WORK/load"
(
	while [[ -f $WORK/load ]]; do
		as_pg "$PG_BINDIR/pgbench" -h "$WORK" -p "$PORT" -n -c "$CLIENTS" -T 20 postgres >/dev/null 2>&1 || sleep 1
	done
) &
LOAD_PID=$!
bench_teardown() { rm -f "$WORK/load"; wait "$LOAD_PID" 2>/dev/null || true; }

declare -A KILLED=()
KILLS=0
RELOADS=0
COMPRESSION=off
start=$SECONDS
next_kill=$((start + KILL_MIN + RANDOM % (KILL_MAX - KILL_MIN + 1)))
next_pool=$((start + POOL_EVERY))
next_compression=$((start + COMPRESSION_EVERY))
compression_i=0
while ((SECONDS - start < DURATION)); do
	now=$SECONDS
	if ((now >= next_pool)); then
		max=$((RANDOM % 9))
		min=$((RANDOM % (max + 1)))
		set_conf "pg_walvault.max_workers = $max" "pg_walvault.min_workers = $min"
		RELOADS=$((RELOADS + 1))
		next_pool=$((now + POOL_EVERY))
	fi
	if ((now >= next_compression)); then
		compression_i=$(((compression_i + 1) % ${#COMPRESSION_LIST[@]}))
		COMPRESSION=${COMPRESSION_LIST[$compression_i]}
		set_conf "pg_walvault.compression = '$COMPRESSION'"
		RELOADS=$((RELOADS + 1))
		next_compression=$((now + COMPRESSION_EVERY))
	fi
	if ((now >= next_kill)); then
		wait_ready
		victim=$(psql_run -c "SELECT role || ' ' || pid FROM pg_stat_walvault_workers WHERE pid IS NOT NULL ORDER BY random() LIMIT 1" 2>/dev/null || true)
		if [[ -n $victim ]]; then
			role=${victim% *}
			pid=${victim##* }
			if kill -KILL "$pid" 2>/dev/null; then
				KILLS=$((KILLS + 1))
				KILLED[$role]=$((${KILLED[$role]:-0} + 1))
				log "SIGKILL $role (pid $pid); max_workers ${max:-default}, compression $COMPRESSION"
				sleep 1
				wait_ready
			fi
		fi
		next_kill=$((SECONDS + KILL_MIN + RANDOM % (KILL_MAX - KILL_MIN + 1)))
	fi
	sleep 1
done

log "stopping the load and shutting down cleanly"
bench_teardown
wait_ready
as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 600 stop >/dev/null || die "clean shutdown failed (see $LOG)"
server_stopped "$DATA"

# ----------------------------------------------------------- verify ----
log "verifying every segment marked archived"
checked=0
missing=0
different=0
left_ready=$(count_ready "$DATA")
bad=()
for done_file in "$DATA"/pg_wal/archive_status/*.done; do
	f=$(basename "$done_file" .done)
	[[ $f =~ ^[0-9A-F]{24}$ ]] || continue
	checked=$((checked + 1))
	out=$WORK/restored
	if ! as_pg "$PG_BINDIR/pg_walvault_restore" -d "$ARCHIVE" "$f" "$out" 2>>"$WORK/restore.err"; then
		missing=$((missing + 1))
		bad+=("$f: not restorable")
	elif ! cmp -s "$out" "$DATA/pg_wal/$f"; then
		different=$((different + 1))
		bad+=("$f: differs")
	fi
	rm -f "$out"
done
stored=$(find "$ARCHIVE" -maxdepth 1 -type f -name '0*' | sed -E 's/.*\.(zst|lz4|gz)$/\1/; t; s/.*/plain/' | sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
crashes=$(grep -c 'all server processes terminated; reinitializing' "$LOG" || true)
lost=$((missing + different + left_ready))

OUT=$WORK/report.md
{
	echo "### Soak: $(date '+%Y-%m-%d %H:%M')"
	echo
	report_preamble
	echo "- Load: pgbench -c $CLIENTS, scale $SCALE, for $DURATION s; seed $SEED"
	echo "- SIGKILLs: $KILLS ($(for r in "${!KILLED[@]}"; do printf '%s %s; ' "$r" "${KILLED[$r]}"; done | sed 's/; $//')); crash restarts of the cluster: $crashes"
	echo "- Reloads: $RELOADS (pool size every $POOL_EVERY s, compression every $COMPRESSION_EVERY s among: $COMPRESSIONS)"
	echo "- Archive: $stored"
	echo "- Segments marked archived and checked: $checked; not restorable: $missing; different: $different; still .ready after the clean shutdown: $left_ready"
	echo "- **Lost: $lost**"
	if ((${#bad[@]} > 0)); then
		echo
		printf -- '- %s\n' "${bad[@]:0:20}"
	fi
	echo
	echo "Problems in the server log (the crashes we caused, and what followed them), most frequent:"
	echo
	echo '```'
	log_problems_top "$LOG"
	echo '```'
} >"$OUT"
publish_report soak
((lost == 0)) || exit 3

#!/usr/bin/env bash
#
# bench/overhead.sh -- pgbench throughput with pg_walvault vs. without it.
#
# One cluster (initdb + pgbench -i), two configurations of the SAME data
# directory, switched by rewriting an included configuration file and
# restarting:
#
#   A  archive_library = 'basic_archive' (pg_walvault not loaded)
#   B  shared_preload_libraries = 'pg_walvault', archive_library =
#      'pg_walvault', pg_walvault.stats_interval = '1s' (default workers)
#
# Runs alternate A B A B ... (RUNS pairs).  Each run: restart with the
# configuration, prewarm, an untimed warm-up pgbench, VACUUM of the small
# tables + TRUNCATE pgbench_history (what pgbench does without -n), wait until
# archiving has caught up, CHECKPOINT, then the timed `pgbench -n -T DURATION`.
# After each run archiving must catch up, files must be in the archive
# directory and no attempt may have failed, otherwise the script dies.
#
# Acceptance criterion: median TPS of B >= THRESHOLD % (98) of median TPS of A.
# See bench/README.md for the knobs.  Runnable as root (servers then
# run as the postgres user) or as an ordinary user.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- knobs ----
record_knobs RUNS DURATION WARMUP CLIENTS JOBS SCALE BENCH_DIR PG_BINDIR PORT SHARED_BUFFERS STATS_INTERVAL THRESHOLD PREWARM CATCHUP_TIMEOUT KEEP STRICT

RUNS=${RUNS:-5}                     # pairs A B
DURATION=${DURATION:-60}            # seconds per timed run
WARMUP=${WARMUP:-10}                # seconds of untimed pgbench after each restart
CLIENTS=${CLIENTS:-4}
JOBS=${JOBS:-2}
SCALE=${SCALE:-50}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54700}
SHARED_BUFFERS=${SHARED_BUFFERS:-1GB}
STATS_INTERVAL=${STATS_INTERVAL:-1s}
THRESHOLD=${THRESHOLD:-98}          # percent
PREWARM=${PREWARM:-1}               # 1: pg_prewarm the pgbench relations after each restart
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-300} # seconds for archiving to catch up after a run
KEEP=${KEEP:-0}                     # 1: keep the work directory (servers are stopped anyway)
STRICT=${STRICT:-0}                 # 1: exit 3 if the criterion fails

is_uint "$RUNS" && ((RUNS >= 1)) || die "RUNS must be a positive integer"
is_uint "$DURATION" && ((DURATION >= 1)) || die "DURATION must be a positive integer (seconds)"
is_uint "$WARMUP" || die "WARMUP must be an integer (seconds)"
is_uint "$CLIENTS" && ((CLIENTS >= 1)) || die "CLIENTS must be a positive integer"
is_uint "$JOBS" && ((JOBS >= 1 && JOBS <= CLIENTS)) || die "JOBS must be 1..CLIENTS"
is_uint "$SCALE" && ((SCALE >= 1)) || die "SCALE must be a positive integer"
is_uint "$PORT" && ((PORT > 1024 && PORT < 65536)) || die "PORT must be 1025..65535"
is_uint "$CATCHUP_TIMEOUT" || die "CATCHUP_TIMEOUT must be an integer (seconds)"
[[ $THRESHOLD =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "THRESHOLD must be a number (percent)"

# ------------------------------------------------------------ who runs ----
setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config pgbench
[[ -f $PKGLIBDIR/basic_archive.so ]] || die "basic_archive.so not in $PKGLIBDIR (install postgresql contrib)"
[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)"
if [[ $PREWARM == 1 && ! -f $PKGLIBDIR/pg_prewarm.so ]]; then
	PREWARM=0
	echo "pg_prewarm.so not found: running without prewarming" >&2
fi

# ------------------------------------------------------- work directory ----
make_work_dir overhead " (server stopped)"
DATA=$WORK/data
LOGDIR=$WORK/log
declare -A ARCH=([A]=$WORK/archive-a [B]=$WORK/archive-b)
mkdir -p "$LOGDIR" "${ARCH[A]}" "${ARCH[B]}"
give_work_dir_to_pg

# ------------------------------------------------------------- machine ----
describe_machine
DISK_DESC="$(df --output=source "$WORK" | tail -1) ($(df --output=fstype "$WORK" | tail -1))"
SO_CHANGED=0
CMDLINE="${SET_KNOBS}bench/overhead.sh"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "pg_walvault overhead benchmark: $CMDLINE"
log "work directory $WORK on $DISK_DESC"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS, load average $LOAD_START"
log "RUNS=$RUNS pairs, DURATION=${DURATION}s, WARMUP=${WARMUP}s, CLIENTS=$CLIENTS, JOBS=$JOBS, SCALE=$SCALE"
((DURATION >= 60 && RUNS >= 5)) || log "WARNING: DURATION < 60 or RUNS < 5: a trial, not a valid run for the acceptance criterion"

# ----------------------------------------------------------- helpers ----
pg_start() { # logfile
	server_started "$DATA"
	as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$1" -w -t 300 start >/dev/null ||
		{ tail -n 30 "$1" >&2 || true; die "server did not start (log: $1)"; }
}
pg_stop() {
	as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 300 stop >/dev/null || die "server did not stop"
	server_stopped "$DATA"
}

# The configuration: postgresql.conf includes bench.conf, rewritten per run.
write_conf() { # A | B | init
	{
		echo "# ---- bench/overhead.sh: configuration $1, written $(date '+%H:%M:%S') ----"
		case $1 in
		init)
			echo "archive_mode = off" ;;
		A)
			echo "archive_mode = on"
			echo "archive_library = 'basic_archive'"
			echo "basic_archive.archive_directory = '${ARCH[A]}'" ;;
		B)
			echo "archive_mode = on"
			echo "shared_preload_libraries = 'pg_walvault'"
			echo "archive_library = 'pg_walvault'"
			echo "pg_walvault.archive_directory = '${ARCH[B]}'"
			echo "pg_walvault.stats_interval = '$STATS_INTERVAL'" ;;
		esac
	} | as_pg tee "$DATA/bench.conf" >/dev/null
}

# Wait until pg_wal/archive_status holds no .ready file; prints the seconds waited.
wait_caught_up() { # what
	local t0 n
	t0=$(date +%s.%N)
	while :; do
		n=$(count_ready "$DATA")
		((n == 0)) && break
		if (($(date +%s) - ${t0%.*} > CATCHUP_TIMEOUT)); then
			die "$1: archiving did not catch up within ${CATCHUP_TIMEOUT}s ($n .ready files left)"
		fi
		sleep 0.1
	done
	calc "$(date +%s.%N) - $t0" %.1f
}

# ------------------------------------------------------------ cluster ----
log "initdb + pgbench -i -s $SCALE (archive_mode off)"
as_pg "$PG_BINDIR/initdb" -D "$DATA" -A trust >/dev/null || die "initdb failed"
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# ---- bench/overhead.sh: common settings ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
max_connections = $((CLIENTS + 20))
shared_buffers = $SHARED_BUFFERS
max_wal_size = 4GB
min_wal_size = 1GB
checkpoint_timeout = 30min
checkpoint_completion_target = 0.9
fsync = on
wal_level = replica
archive_timeout = 0
log_checkpoints = on
include = 'bench.conf'
EOF
write_conf init
pg_start "$LOGDIR/init.log"
psql_run -c "CREATE DATABASE bench"
as_pg "$PG_BINDIR/pgbench" -h "$WORK" -p "$PORT" -i -q -s "$SCALE" bench >"$LOGDIR/pgbench-init.out" 2>&1 ||
	{ tail -n 20 "$LOGDIR/pgbench-init.out" >&2; die "pgbench -i failed"; }
[[ $PREWARM == 1 ]] && psql_db bench -c "CREATE EXTENSION pg_prewarm"
psql_db bench -c "VACUUM ANALYZE"
psql_run -c "CHECKPOINT"
DB_SIZE=$(psql_run -c "SELECT pg_size_pretty(pg_database_size('bench'))")
pg_stop
log "database bench: $DB_SIZE"

# ------------------------------------------------------------- one run ----
declare -A TPS_LIST
DETAIL_ROWS=()
RUN_NO=0
LOAD_MAX=0
LOG_PROBLEMS=()

run_one() { # config pair
	local c=$1 pair=$2 lf out tps lat nready_end catch narch archived=0 failed=0 wvfail="" load1 probs
	RUN_NO=$((RUN_NO + 1))
	lf=$LOGDIR/run-$RUN_NO-$c.log
	log "pair $pair/$RUNS, run $RUN_NO: configuration $c"

	# fresh, empty archive directory for this run
	find "${ARCH[$c]}" -mindepth 1 -delete
	write_conf "$c"
	pg_start "$lf"
	psql_run -c "SELECT pg_stat_reset_shared('archiver')" >/dev/null
	if [[ $c == B ]]; then
		if [[ $(so_info) != "$SO_INFO" ]]; then
			SO_CHANGED=1
			log "    WARNING: pg_walvault.so was reinstalled since the start: $(so_info)"
		fi
		psql_run -c "CREATE EXTENSION IF NOT EXISTS pg_walvault"
		local lib
		lib=$(psql_run -c "SHOW archive_library")
		[[ $lib == pg_walvault ]] || die "B: archive_library is '$lib'"
	else
		local spl
		spl=$(psql_run -c "SHOW shared_preload_libraries")
		[[ $spl != *pg_walvault* ]] || die "A: pg_walvault is in shared_preload_libraries"
	fi
	if [[ $PREWARM == 1 ]]; then
		psql_db bench -c "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c WHERE c.relname LIKE 'pgbench\\_%' AND c.relkind IN ('r', 'i')" >/dev/null
	fi
	if ((WARMUP > 0)); then
		as_pg "$PG_BINDIR/pgbench" -h "$WORK" -p "$PORT" -n -c "$CLIENTS" -j "$JOBS" -T "$WARMUP" bench \
			>"$LOGDIR/run-$RUN_NO-$c-warmup.out" 2>&1 ||
			{ tail -n 20 "$LOGDIR/run-$RUN_NO-$c-warmup.out" >&2; die "$c: warm-up pgbench failed"; }
	fi
	psql_db bench -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" -c "TRUNCATE pgbench_history"
	catch=$(wait_caught_up "$c before the run")
	psql_run -c "CHECKPOINT"
	load1=$(cut -d' ' -f1 /proc/loadavg)
	awk -v a="$load1" -v b="$LOAD_MAX" 'BEGIN { exit !(a > b) }' && LOAD_MAX=$load1

	log "    timed run: pgbench -n -c $CLIENTS -j $JOBS -T $DURATION (load $load1)"
	out=$LOGDIR/run-$RUN_NO-$c.out
	as_pg "$PG_BINDIR/pgbench" -h "$WORK" -p "$PORT" -n -c "$CLIENTS" -j "$JOBS" -T "$DURATION" bench >"$out" 2>&1 ||
		{ tail -n 20 "$out" >&2; die "$c: pgbench failed"; }
	nready_end=$(count_ready "$DATA")
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
	[[ -z $tps ]] || tps=$(printf '%.1f' "$tps")
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
	[[ -n $tps ]] || { cat "$out" >&2; die "$c: no tps in the pgbench output"; }
	grep -q '^number of failed transactions: 0 ' "$out" || ! grep -q '^number of failed transactions' "$out" ||
		die "$c: pgbench reports failed transactions"

	# ---- verify: archiving caught up, files archived, no failure ----
	catch=$(wait_caught_up "$c after the run")
	psql_run -c "SELECT pg_switch_wal()" >/dev/null   # the run's last, partial segment too
	wait_caught_up "$c after pg_switch_wal()" >/dev/null
	narch=$(count_archived "${ARCH[$c]}")
	# pg_stat_archiver is updated just after the .done rename: give it a moment
	local i
	for ((i = 0; i < 100; i++)); do
		IFS='|' read -r archived failed < <(psql_run -c "SELECT archived_count, failed_count FROM pg_stat_archiver")
		((archived >= narch)) && break
		sleep 0.1
	done
	((narch > 0)) || die "$c: VERIFY FAILED: no WAL segment in ${ARCH[$c]} after the run"
	((archived > 0)) || die "$c: VERIFY FAILED: pg_stat_archiver.archived_count = 0"
	((failed == 0)) || die "$c: VERIFY FAILED: pg_stat_archiver.failed_count = $failed (log: $lf)"
	((narch == archived)) || log "    WARNING: pg_stat_archiver counts $archived files archived, the archive directory holds $narch segments"
	if [[ $c == B ]]; then
		wvfail=$(psql_run -c "SELECT failed_count FROM pg_stat_walvault")
		((wvfail == 0)) || die "B: VERIFY FAILED: pg_stat_walvault.failed_count = $wvfail (log: $lf)"
	fi
	pg_stop
	# Background workers stopped by the shutdown log a FATAL "terminating
	# background worker ... due to administrator command": counted apart.
	local shut
	shut=$(shutdown_fatals "$lf")
	SHUTDOWN_FATALS[$c]=$((${SHUTDOWN_FATALS[$c]:-0} + shut))
	probs=$(log_problems "$lf" | wc -l)
	if ((probs > 0)); then
		log "    WARNING: $probs ERROR/FATAL/PANIC/WARNING lines in $lf:"
		log_problems_top "$lf"
		LOG_PROBLEMS+=("run $RUN_NO ($c): $probs lines, e.g. \`$(first_problem "$lf")\`")
	fi

	TPS_LIST[$c]+="$tps "
	log "    $c: tps $tps, latency ${lat} ms; .ready at end $nready_end, caught up in ${catch} s; $narch segments archived, 0 failed"
	DETAIL_ROWS+=("| $RUN_NO | $pair | $c | $tps | $lat | $nready_end | $catch | $narch | $load1 |")
}

declare -A SHUTDOWN_FATALS=()

START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
for ((p = 1; p <= RUNS; p++)); do
	run_one A "$p"
	run_one B "$p"
done
ELAPSED=$(($(date +%s) - START_EPOCH))

# -------------------------------------------------------------- report ----
read -r -a tps_a <<<"${TPS_LIST[A]}"
read -r -a tps_b <<<"${TPS_LIST[B]}"
MED_A=$(median "${tps_a[@]}")
MED_B=$(median "${tps_b[@]}")
RATIO=$(calc "$MED_B / $MED_A")
PAIR_RATIOS=()
for ((i = 0; i < ${#tps_a[@]}; i++)); do PAIR_RATIOS+=("$(calc "${tps_b[$i]} / ${tps_a[$i]}" %.4f)"); done
MED_PAIR=$(median "${PAIR_RATIOS[@]}")
if awk -v r="$RATIO" -v t="$THRESHOLD" 'BEGIN { exit !(r * 100 >= t) }'; then VERDICT=PASS; else VERDICT=FAIL; fi
VALID=1
((DURATION >= 60 && RUNS >= 5)) || VALID=0

OUT=$WORK/report.md
{
	echo "### pgbench overhead of pg_walvault, $DATE_STR"
	echo
	report_preamble "data and archive on $DISK_DESC"
	echo "- Load average at start: $LOAD_START; highest 1-min load at a run's start: $LOAD_MAX; total time ${ELAPSED} s"
	echo "- One cluster, pgbench scale $SCALE ($DB_SIZE), shared_buffers = $SHARED_BUFFERS, max_wal_size = 4GB, checkpoint_timeout = 30min, fsync on, synchronous_commit on, autovacuum on"
	echo "- A: \`archive_library = 'basic_archive'\` (pg_walvault not loaded); B: \`shared_preload_libraries = 'pg_walvault'\`, \`archive_library = 'pg_walvault'\`, \`pg_walvault.stats_interval = '$STATS_INTERVAL'\`, default workers. Separate archive directories, emptied before each run"
	echo "- Each run: restart$([[ $PREWARM == 1 ]] && echo ", pg_prewarm"), ${WARMUP} s warm-up, VACUUM branches/tellers + TRUNCATE history, archive caught up, CHECKPOINT, then \`pgbench -n -c $CLIENTS -j $JOBS -T $DURATION\` (TPS without initial connection time). Order A B A B …; every run verified: archive caught up, segments in the archive, pg_stat_archiver.failed_count = 0"
	((SO_CHANGED == 0)) || echo "- **WARNING: pg_walvault.so was reinstalled during the benchmark: the B runs mix builds; run again**"
	((VALID == 1)) || echo "- **Trial settings (DURATION < 60 or RUNS < 5): not a valid run for the acceptance criterion**"
	echo
	echo "| configuration | runs | median TPS | all runs (TPS) |"
	echo "|---|---:|---:|---|"
	echo "| A basic_archive | ${#tps_a[@]} | $(printf '%.1f' "$MED_A") | $(echo "${tps_a[*]}" | sed 's/ /, /g') |"
	echo "| B pg_walvault, stats_interval $STATS_INTERVAL | ${#tps_b[@]} | $(printf '%.1f' "$MED_B") | $(echo "${tps_b[*]}" | sed 's/ /, /g') |"
	echo
	echo "| criterion | required | measured | result |"
	echo "|---|---:|---:|---|"
	echo "| median TPS B / median TPS A | ≥ $(calc "$THRESHOLD" %.1f) % | $(calc "$RATIO * 100" %.2f) % | **$VERDICT$( ((VALID == 1)) || echo " (trial)")** |"
	echo
	echo "Per-pair ratios B/A: $(echo "${PAIR_RATIOS[*]}" | sed 's/ /, /g') (median $MED_PAIR)."
	if ((${#LOG_PROBLEMS[@]} > 0)); then
		echo
		echo "Server log problems:"
		for l in "${LOG_PROBLEMS[@]}"; do echo "- $l"; done
	else
		echo
		echo "Server logs: no ERROR, FATAL, PANIC or WARNING line."
	fi
	if ((${SHUTDOWN_FATALS[B]:-0} + ${SHUTDOWN_FATALS[A]:-0} > 0)); then
		echo "(Not counted: ${SHUTDOWN_FATALS[A]:-0} (A) and ${SHUTDOWN_FATALS[B]:-0} (B) \`FATAL: terminating background worker … due to administrator command\` lines, logged by background workers stopped at each shutdown.)"
	fi
	echo
	all_runs_details "| run | pair | config | TPS | latency avg ms | .ready at end | caught up after (s) | segments archived | load1 |" \
		"|---:|---:|---|---:|---:|---:|---:|---:|---:|" "${DETAIL_ROWS[@]}"
} >"$OUT"

publish_report overhead
if [[ $STRICT == 1 && $VERDICT == FAIL ]]; then
	log "the acceptance criterion failed (STRICT=1)"
	exit 3
fi
exit 0

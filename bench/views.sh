#!/usr/bin/env bash
#
# bench/views.sh -- read latency of the pg_walvault views with a full history.
#
# Starts a cluster with pg_walvault preloaded and archiving,
# pg_walvault.history_size = SAMPLES and pg_walvault.stats_interval =
# STATS_INTERVAL (10ms), creates the extension and waits until
# pg_stat_walvault_history holds SAMPLES rows, generating a little WAL
# meanwhile (so that samples are not all zero and files get archived).  Then,
# while the collector keeps sampling, each query is run ITERATIONS times as
#
#     EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) <query>
#
# and the server-side "Execution Time" is collected (median, p90, max).  The
# client-side round trip of the plain query (psql \timing, rows transferred
# and formatted, output discarded) is shown for reference.
#
# Acceptance criterion (median execution time): pg_stat_walvault and
# pg_stat_walvault_workers < 1 ms, the whole pg_stat_walvault_history < 20 ms.
# See bench/README.md for the knobs.  Runnable as root (the server
# then runs as the postgres user) or as an ordinary user.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- knobs ----
record_knobs SAMPLES ITERATIONS STATS_INTERVAL BENCH_DIR PG_BINDIR PORT FILL_TIMEOUT GEN_WAL KEEP STRICT

SAMPLES=${SAMPLES:-10000}
ITERATIONS=${ITERATIONS:-200}
STATS_INTERVAL=${STATS_INTERVAL:-10ms}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54750}
FILL_TIMEOUT=${FILL_TIMEOUT:-}      # seconds; default: 4 x the nominal fill time + 120
GEN_WAL=${GEN_WAL:-1}               # 1: generate a little WAL while the history fills
KEEP=${KEEP:-0}                     # 1: keep the work directory (the server is stopped anyway)
STRICT=${STRICT:-0}                 # 1: exit 3 if a criterion fails

LIMIT_ONE_MS=1                      # pg_stat_walvault, pg_stat_walvault_workers
LIMIT_HISTORY_MS=20                 # pg_stat_walvault_history

is_uint "$SAMPLES" && ((SAMPLES >= 10 && SAMPLES <= 1000000)) || die "SAMPLES must be 10..1000000"
is_uint "$ITERATIONS" && ((ITERATIONS >= 1)) || die "ITERATIONS must be a positive integer"
is_uint "$PORT" && ((PORT > 1024 && PORT < 65536)) || die "PORT must be 1025..65535"
[[ $STATS_INTERVAL =~ ^([0-9]+)(ms|s)$ ]] || die "STATS_INTERVAL must be like 10ms or 1s"
INTERVAL_MS=${BASH_REMATCH[1]}
[[ ${BASH_REMATCH[2]} == s ]] && INTERVAL_MS=$((INTERVAL_MS * 1000))
((INTERVAL_MS >= 10)) || die "STATS_INTERVAL must be at least 10ms"
NOMINAL_FILL=$(((SAMPLES * INTERVAL_MS + 999) / 1000))
[[ -n $FILL_TIMEOUT ]] || FILL_TIMEOUT=$((NOMINAL_FILL * 4 + 120))
is_uint "$FILL_TIMEOUT" || die "FILL_TIMEOUT must be an integer (seconds)"

# ------------------------------------------------------------ who runs ----
setup_as_pg server
check_pg_bindir initdb pg_ctl psql postgres pg_config
[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)"

# ------------------------------------------------------- work directory ----
make_work_dir views " (server stopped)"
DATA=$WORK/data
ARCH=$WORK/archive
SLOG=$WORK/server.log
mkdir -p "$ARCH"
give_work_dir_to_pg

# ------------------------------------------------------------- machine ----
describe_machine
CMDLINE="${SET_KNOBS}bench/views.sh"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "pg_walvault view latency benchmark: $CMDLINE"
log "work directory $WORK"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS, load average $LOAD_START"
log "SAMPLES=$SAMPLES ITERATIONS=$ITERATIONS STATS_INTERVAL=$STATS_INTERVAL (history fills in about ${NOMINAL_FILL} s)"
((SAMPLES >= 10000)) || log "WARNING: SAMPLES < 10000: a trial, not a valid run for the acceptance criteria"

# ------------------------------------------------------------ cluster ----
log "initdb and start (pg_walvault preloaded, archiving to $ARCH)"
as_pg "$PG_BINDIR/initdb" -D "$DATA" -A trust >/dev/null || die "initdb failed"
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# ---- bench/views.sh ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = 256MB
fsync = on
wal_level = replica
archive_mode = on
archive_timeout = 0
shared_preload_libraries = 'pg_walvault'
archive_library = 'pg_walvault'
pg_walvault.archive_directory = '$ARCH'
pg_walvault.history_size = $SAMPLES
pg_walvault.stats_interval = '$STATS_INTERVAL'
EOF
server_started "$DATA"
as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$SLOG" -w -t 120 start >/dev/null ||
	{ tail -n 30 "$SLOG" >&2 || true; die "server did not start (log: $SLOG)"; }
psql_run -c "CREATE EXTENSION pg_walvault"
[[ $GEN_WAL == 1 ]] && psql_run -c "CREATE TABLE bench_wal (id bigint, payload text)"

# -------------------------------------------------- fill the history ----
T_FILL0=$(date +%s)
n=0
tick=0
last_log=0
while :; do
	n=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_history")
	((n >= SAMPLES)) && break
	now=$(date +%s)
	if ((now - T_FILL0 > FILL_TIMEOUT)); then
		die "the history holds $n of $SAMPLES samples after ${FILL_TIMEOUT}s (log: $SLOG)"
	fi
	if ((now - last_log >= 10)); then
		log "    history: $n/$SAMPLES samples ($((n * 100 / SAMPLES)) %)"
		last_log=$now
	fi
	if [[ $GEN_WAL == 1 ]]; then
		# about 1 MB of WAL a second, a segment switch every ~10 s
		tick=$((tick + 1))
		gen=(-c "INSERT INTO bench_wal SELECT g, md5(g::text) FROM generate_series(1, 10000) g")
		((tick % 10 != 0)) || gen+=(-c "SELECT pg_switch_wal()")
		psql_run "${gen[@]}" >/dev/null
	fi
	sleep 1
done
FILL_SECS=$(($(date +%s) - T_FILL0))
log "history full: $n samples after $FILL_SECS s"

ARCHIVED=$(psql_run -c "SELECT archived_count FROM pg_stat_walvault")
NWORKERS=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_workers")
NONZERO=$(psql_run -c "SELECT count(*) FILTER (WHERE wal_bytes > 0) FROM pg_stat_walvault_history")
log "$ARCHIVED files archived so far, $NWORKERS rows in pg_stat_walvault_workers, $NONZERO samples with wal_bytes > 0"

# ------------------------------------------------------------ measure ----
QUERIES=(
	"SELECT * FROM pg_stat_walvault"
	"SELECT * FROM pg_stat_walvault_workers"
	"SELECT * FROM pg_stat_walvault_history"
)
LIMITS=("$LIMIT_ONE_MS" "$LIMIT_ONE_MS" "$LIMIT_HISTORY_MS")
WARM=5  # untimed executions of each query first

# stats: reads numbers on stdin, prints "median p90 max count" (p90 nearest rank)
stats() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "NaN NaN NaN 0"; exit }
		med = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		r = int(0.9 * NR + 0.999999); if (r < 1) r = 1
		printf "%.3f %.3f %.3f %d\n", med, a[r], a[NR], NR }'
}

ROWS=()
VERDICT_FAIL=0
for i in "${!QUERIES[@]}"; do
	q=${QUERIES[$i]}
	lim=${LIMITS[$i]}
	log "measuring: $q ($ITERATIONS executions)"
	sqlf=$WORK/q$i.sql
	{
		echo '\o /dev/null'
		for ((k = 0; k < WARM; k++)); do echo "$q;"; done
		echo '\o'
		for ((k = 0; k < ITERATIONS; k++)); do echo "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) $q;"; done
	} >"$sqlf"
	chmod 644 "$sqlf"
	expl=$WORK/q$i.explain
	psql_run -f "$sqlf" >"$expl" || die "EXPLAIN ANALYZE of '$q' failed"
	read -r med p90 max cnt < <(sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p' "$expl" | stats)
	((cnt == ITERATIONS)) || die "'$q': $cnt Execution Time lines for $ITERATIONS executions"
	rows=$(sed -n 's/.*(actual rows=\([0-9]*\) loops=1)$/\1/p' "$expl" | head -1)
	plan=$(sed -n 's/^Planning Time: \([0-9.]*\) ms$/\1/p' "$expl" | stats | cut -d' ' -f1)

	# client-side round trip, for reference (psql prints "Time:" even with \o /dev/null)
	cli=$WORK/q$i.client.sql
	{
		echo '\o /dev/null'
		echo '\timing on'
		for ((k = 0; k < ITERATIONS; k++)); do echo "$q;"; done
	} >"$cli"
	chmod 644 "$cli"
	read -r cmed _ cmax _ < <(psql_run -f "$cli" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | stats)

	if awk -v m="$med" -v l="$lim" 'BEGIN { exit !(m < l) }'; then res=PASS; else res=FAIL; VERDICT_FAIL=1; fi
	((SAMPLES >= 10000)) || res="$res (trial)"
	log "    $rows rows; execution median $med ms, p90 $p90 ms, max $max ms (limit < $lim ms: $res); planning median $plan ms; client round trip median $cmed ms"
	ROWS+=("| \`$q\` | $rows | $med | $p90 | $max | < $lim | **$res** | $plan | $cmed |")
done

# the history must still be full and the server healthy
n_end=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_history")
((n_end == SAMPLES)) || log "WARNING: the history holds $n_end rows at the end, expected $SAMPLES"
FAILED=$(psql_run -c "SELECT failed_count FROM pg_stat_walvault")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
as_pg "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 120 stop >/dev/null || die "server did not stop"
server_stopped "$DATA"

SHUT=$(shutdown_fatals "$SLOG")
NPROB=$(log_problems "$SLOG" | wc -l)
if ((NPROB > 0)); then
	log "WARNING: $NPROB ERROR/FATAL/PANIC/WARNING lines in the server log:"
	log_problems_top "$SLOG"
fi

# -------------------------------------------------------------- report ----
OUT=$WORK/report.md
{
	echo "### pg_walvault view read latency, $(date '+%Y-%m-%d %H:%M %Z')"
	echo
	report_preamble "load average $LOAD_START at start, $LOAD_END at the end"
	echo "- pg_walvault.history_size = $SAMPLES, stats_interval = $STATS_INTERVAL (history full after $FILL_SECS s; the collector keeps sampling during the measurement); $ARCHIVED files archived, $NONZERO samples with WAL, $NWORKERS pg_walvault processes, failed_count $FAILED"
	echo "- Server-side execution time: \`EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) <query>\`, \"Execution Time\", $ITERATIONS executions per query after $WARM untimed ones, one session. Client round trip: the plain query in psql with \`\\timing\` (rows transferred and formatted, output discarded), for reference only"
	[[ $(so_info) == "$SO_INFO" ]] || echo "- **WARNING: pg_walvault.so was reinstalled during the benchmark (the server still runs the build it started with)**"
	((SAMPLES >= 10000)) || echo "- **Trial settings (SAMPLES < 10000): not a valid run for the acceptance criteria**"
	echo
	echo "| query | rows | median ms | p90 ms | max ms | required (median) | result | planning median ms | client round trip median ms |"
	echo "|---|---:|---:|---:|---:|---:|---|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
	echo
	if ((NPROB > 0)); then
		echo "Server log: $NPROB ERROR/FATAL/PANIC/WARNING lines, e.g. \`$(first_problem "$SLOG")\`"
	else
		echo "Server log: no ERROR, FATAL, PANIC or WARNING line."
	fi
	((SHUT == 0)) || echo "(Not counted: $SHUT \`FATAL: terminating background worker … due to administrator command\` lines at shutdown.)"
} >"$OUT"

publish_report views
if [[ $STRICT == 1 && $VERDICT_FAIL == 1 ]]; then
	log "an acceptance criterion failed (STRICT=1)"
	exit 3
fi
exit 0

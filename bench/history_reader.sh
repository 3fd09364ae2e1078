#!/usr/bin/env bash
#
# bench/history_reader.sh -- does reading a big history slow archiving down?
#
# pg_walvault.history_size = SAMPLES (a million by default), full, and a
# backlog of SEGMENTS ready WAL segments drained by 4 workers, timed as
# bench/drain.sh times it (from the reload that sets the archive directory
# until no .ready file is left).  Three configurations, alternating in the
# same run:
#
#   none     nobody reads the history
#   reader   one session reads the whole history in a loop
#            (SELECT count(*) FROM pg_stat_walvault_history, work_mem large
#            enough to keep the rows in memory), from before the reload until
#            the drain is over; the number of complete reads is reported
#   control  one session reads a copy of the history, as many rows and
#            columns, from a table through a set-returning SQL function
#            (materialized into a tuplestore as ours is), in the same loop:
#            the same CPU and memory work, and none of pg_walvault's locks
#
# Acceptance criterion: the median drain rate with the reader is at least
# 95 % of the median rate without (a reader may slow archiving by 5 % at
# most).  The control tells how much of a difference is the CPU the reader
# burns rather than what it does to pg_walvault: on a machine with few CPUs
# a session busy in a loop takes one of them from the workers whatever it
# reads.
#
# The collector would take hours to fill a million samples (10 ms each), so
# the history is made once: a template cluster generates the backlog while
# the collector samples, is shut down cleanly (which saves counters and
# history), and bench/fill_history.c grows the saved history to SAMPLES
# samples.  Every run starts a fresh copy of that template, which loads the
# full history at start.
#
# Knobs (environment, see bench/README.md): CONFIGS ("none reader
# control"), SEGMENTS (128), REPEAT (5), SAMPLES (1000000), STATS_INTERVAL
# (10ms), READER_WORK_MEM (1GB), PG_BINDIR, PORT (54800), BENCH_DIR, KEEP
# (0), DROP_CACHES (auto), STRICT (0: 1 exits 3 on FAIL).
# Runnable as root (servers run as postgres, the page cache is dropped
# before each drain) or as an ordinary user.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- knobs ----
record_knobs CONFIGS SEGMENTS REPEAT SAMPLES STATS_INTERVAL READER_WORK_MEM BENCH_DIR PG_BINDIR PORT DROP_CACHES KEEP STRICT

CONFIGS=${CONFIGS:-none reader control}
SEGMENTS=${SEGMENTS:-128}
REPEAT=${REPEAT:-5}
SAMPLES=${SAMPLES:-1000000}
STATS_INTERVAL=${STATS_INTERVAL:-10ms}
READER_WORK_MEM=${READER_WORK_MEM:-1GB}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54800}
DROP_CACHES=${DROP_CACHES:-auto}
KEEP=${KEEP:-0}
STRICT=${STRICT:-0}
POLL_MS=10
DRAIN_TIMEOUT=900
FILL=85
REQUIRED=0.95

read -r -a CONFIG_LIST <<<"$CONFIGS"
for c in "${CONFIG_LIST[@]}"; do
	[[ $c == none || $c == reader || $c == control ]] || die "unknown configuration '$c' (known: none reader control)"
done
[[ " $CONFIGS " == *" none "* && " $CONFIGS " == *" reader "* ]] || die "CONFIGS must include none and reader"
is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
is_uint "$SAMPLES" && ((SAMPLES >= 10 && SAMPLES <= 1000000)) || die "SAMPLES must be 10..1000000"
is_uint "$PORT" && ((PORT > 1024 && PORT < 65536)) || die "PORT must be 1025..65535"
[[ $STATS_INTERVAL =~ ^([0-9]+)ms$ ]] || die "STATS_INTERVAL must be like 10ms"
INTERVAL_MS=${BASH_REMATCH[1]}

# ------------------------------------------------------------ who runs ----
setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config
[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)"
command -v perl >/dev/null || die "perl is needed for the timing loop"
command -v cc >/dev/null || die "a C compiler is needed for bench/fill_history.c"

make_work_dir history
cc -O2 -o "$WORK/fill_history" "$SCRIPT_DIR/fill_history.c" || die "could not build bench/fill_history.c"
give_work_dir_to_pg

describe_machine
if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then
	DO_DROP=1
else
	DO_DROP=0
fi
CMDLINE="${SET_KNOBS}bench/history_reader.sh"
log "pg_walvault history reader benchmark: $CMDLINE"
log "work directory $WORK; $(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS"
log "SEGMENTS=$SEGMENTS REPEAT=$REPEAT SAMPLES=$SAMPLES STATS_INTERVAL=$STATS_INTERVAL"
((SEGMENTS >= 100 && SAMPLES == 1000000)) || log "WARNING: not the default SEGMENTS >= 100 and SAMPLES = 1000000: a trial, not a valid run for the criterion"

# ----------------------------------------------------------- helpers ----

# Poll a query until it prints t, for at most $2 seconds.
wait_for() { # query seconds what
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ $(psql_run -c "$1") == t ]] && return 0
		sleep 0.1
	done
	die "timed out waiting for $3"
}



# ------------------------------------------------------------ template ----
TEMPLATE=$WORK/template/data
mkdir -p "$TEMPLATE" && { ((EUID != 0)) || chown -R postgres: "$WORK/template"; }
log "template cluster: initdb, backlog of $SEGMENTS segments, a saved history"
as_pg "$PG_BINDIR/initdb" -D "$TEMPLATE" -A trust -N >/dev/null || die "initdb failed"
as_pg tee -a "$TEMPLATE/postgresql.conf" >/dev/null <<EOF

# ---- bench/history_reader.sh ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = 256MB
max_wal_size = $((SEGMENTS * 32 > 4096 ? SEGMENTS * 32 : 4096))MB
checkpoint_timeout = 1h
autovacuum = off
wal_level = replica
archive_mode = on
archive_timeout = 0
shared_preload_libraries = 'pg_walvault'
archive_library = 'pg_walvault'
pg_walvault.archive_directory = ''
pg_walvault.max_workers = 4
pg_walvault.min_workers = 4
pg_walvault.history_size = $SAMPLES
pg_walvault.stats_interval = '$STATS_INTERVAL'
EOF
pg_start "$TEMPLATE"
psql_run -c "CREATE EXTENSION pg_walvault"
fill_segments "$SEGMENTS"
psql_run -c "CHECKPOINT"
wait_for "SELECT count(*) >= 100 FROM pg_stat_walvault_history" 60 "100 samples"
pg_stop "$TEMPLATE"
as_pg "$WORK/fill_history" "$TEMPLATE/pg_stat/pg_walvault_history.stat" "$SAMPLES" "$INTERVAL_MS" >/dev/null ||
	die "fill_history failed"
# the control's table: a copy of the full history (the server is started
# once more to make it, and its statistics are saved again at the stop)
pg_start "$TEMPLATE"
wait_for "SELECT count(*) = $SAMPLES FROM pg_stat_walvault_history" 300 "the history to be loaded"
psql_run <<EOF
CREATE TABLE history_copy AS SELECT * FROM pg_stat_walvault_history;
CREATE FUNCTION history_copy() RETURNS SETOF history_copy
	LANGUAGE sql AS 'SELECT * FROM history_copy';
VACUUM ANALYZE history_copy;
CHECKPOINT;
EOF
pg_stop "$TEMPLATE"
TEMPLATE_READY=$(count_ready "$TEMPLATE")
((TEMPLATE_READY >= SEGMENTS)) || die "the template has $TEMPLATE_READY ready segments, expected $SEGMENTS"
log "template ready: $TEMPLATE_READY ready segments, a history of $SAMPLES samples"

# -------------------------------------------------------------- one run ----
declare -A SECS READS
RUN_NO=0
RUN_ROWS=()
run_one() { # config rep
	local c=$1 rep=$2 r d a secs n reads=0 reader_pid="" rps="" load1
	RUN_NO=$((RUN_NO + 1))
	r=$WORK/run-$RUN_NO
	d=$r/data
	a=$r/archive
	mkdir -p "$r" "$a"
	((EUID != 0)) || chown -R postgres: "$r" "$a"
	chmod 700 "$r"
	cp -a "$TEMPLATE" "$d"
	pg_start "$d"
	wait_for "SELECT count(*) = $SAMPLES FROM pg_stat_walvault_history" 300 "the history to be loaded"
	wait_for "SELECT count(*) >= 4 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'" 60 "4 idle workers"
	n=$(count_ready "$d")
	((n >= SEGMENTS)) || die "run $RUN_NO: $n ready segments"

	psql_run -c "CHECKPOINT"
	sync
	[[ $DO_DROP == 0 ]] || echo 3 >/proc/sys/vm/drop_caches

	if [[ $c != none ]]; then
		local source=pg_stat_walvault_history
		[[ $c == reader ]] || source="history_copy()"
		psql_run -c "CREATE SEQUENCE IF NOT EXISTS bench_reads"
		psql_run -c "SELECT setval('bench_reads', 1, false)" >/dev/null
		psql_run >"$r/reader.out" 2>&1 <<EOF &
SET work_mem = '$READER_WORK_MEM';
SET application_name = 'history_reader';
DO \$\$
BEGIN
	LOOP
		PERFORM count(*) FROM $source;
		PERFORM nextval('bench_reads');
	END LOOP;
END
\$\$;
EOF
		reader_pid=$!
		wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'history_reader' AND state = 'active'" 60 "the reader"
		# the reader is in its loop once it finished one read
		wait_for "SELECT last_value >= 1 AND is_called FROM bench_reads" 120 "a first read"
	fi

	load1=$(cut -d' ' -f1 /proc/loadavg)
	as_pg tee -a "$d/postgresql.conf" >/dev/null <<<"pg_walvault.archive_directory = '$a'"
	local reads0=0
	[[ $c == none ]] || reads0=$(psql_run -c "SELECT last_value FROM bench_reads")
	secs=$(time_drain "$d") || die "run $RUN_NO ($c): drain failed (log: $r/server.log)"
	if [[ $c != none ]]; then
		reads=$(($(psql_run -c "SELECT last_value FROM bench_reads") - reads0))
		psql_run -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'history_reader'" >/dev/null
		wait "$reader_pid" 2>/dev/null || true
		rps=$(calc "$reads / $secs" %.1f)
	fi

	# every ready segment is in the archive, full size
	local archived
	archived=$(count_archived "$a")
	((archived >= SEGMENTS)) || die "run $RUN_NO ($c): $archived segments archived, expected $SEGMENTS"
	local failed
	failed=$(psql_run -c "SELECT failed_count FROM pg_stat_walvault")
	pg_stop "$d"
	rm -rf "$r"

	SECS[$c]+="$secs "
	READS[$c]+="$reads "
	RUN_ROWS+=("| $rep | $c | $secs | $(calc "$n / $secs" %.1f) | ${reads:-0}${rps:+ ($rps/s)} | $failed | $load1 |")
	log "    rep $rep $c: $n segments in $secs s ($(calc "$n / $secs" %.1f) segments/s)${rps:+, $reads complete reads ($rps/s)}"
}

for ((rep = 1; rep <= REPEAT; rep++)); do
	order=("${CONFIG_LIST[@]}")
	if ((rep % 2 == 0)); then
		mapfile -t order < <(printf '%s\n' "${CONFIG_LIST[@]}" | tac)
	fi
	for c in "${order[@]}"; do run_one "$c" "$rep"; done
done

# -------------------------------------------------------------- report ----
declare -A MED
for c in "${CONFIG_LIST[@]}"; do
	read -r -a t <<<"${SECS[$c]}"
	MED[$c]=$(median "${t[@]}")
done
# rates are segments per second: the ratio of rates is the inverse of times
ratio=$(calc "${MED[none]} / ${MED[reader]}" %.3f)
if awk -v r="$ratio" -v q="$REQUIRED" 'BEGIN { exit !(r >= q) }'; then verdict=PASS; else verdict=FAIL; fi
((SEGMENTS >= 100 && SAMPLES == 1000000)) || verdict="$verdict (trial)"
declare -A WHAT=(
	[none]="none: no reader"
	[reader]="reader: \`SELECT count(*) FROM pg_stat_walvault_history\` in a loop"
	[control]="control: the same rows from a table, through an SQL set-returning function, in a loop"
)

OUT=$WORK/report.md
{
	echo "### History reader during a drain, $(date '+%Y-%m-%d %H:%M %Z'): $verdict ($(calc "$ratio * 100" %.1f) %)"
	echo
	report_preamble "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo "- $TEMPLATE_READY ready 16 MiB segments ($SEGMENTS generated, ≥ $FILL % real WAL, and the one initdb filled) drained by 4 warm workers into a local directory; pg_walvault.history_size = $SAMPLES, full at start (loaded from a saved history grown by \`bench/fill_history.c\`), stats_interval = $STATS_INTERVAL; page cache dropped before each drain: $([[ $DO_DROP == 1 ]] && echo yes || echo no)"
	echo "- Readers loop from before the reload until the drain ended, with work_mem = $READER_WORK_MEM; configurations in alternating order, $REPEAT repetitions"
	echo
	echo "| configuration | median s | segments/s | vs none | complete reads in each drain |"
	echo "|---|---:|---:|---:|---|"
	for c in "${CONFIG_LIST[@]}"; do
		read -r -a rd <<<"${READS[$c]}"
		echo "| ${WHAT[$c]} | ${MED[$c]} | $(calc "$TEMPLATE_READY / ${MED[$c]}" %.1f) | $(calc "${MED[none]} / ${MED[$c]} * 100" %.1f) % | $([[ $c == none ]] && echo – || echo "${rd[*]}") |"
	done
	echo
	echo "| criterion | required | measured | result |"
	echo "|---|---:|---:|---|"
	echo "| drain rate with the reader / without | ≥ $(calc "$REQUIRED * 100" %.0f) % | $(calc "$ratio * 100" %.1f) % | **$verdict** |"
	if [[ -n ${MED[control]:-} ]]; then
		echo
		echo "Drain rate with the reader / with the control reader: $(calc "${MED[control]} / ${MED[reader]} * 100" %.1f) %."
	fi
	echo
	all_runs_details "| rep | configuration | s | segments/s | reads | failed_count | load1 |" "|---:|---|---:|---:|---|---:|---:|" "${RUN_ROWS[@]}"
} >"$OUT"
publish_report history_reader
if [[ $STRICT == 1 && $verdict == FAIL* ]]; then
	exit 3
fi
exit 0

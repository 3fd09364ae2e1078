#!/usr/bin/env bash
#
# bench/small_drain.sh -- draining a backlog of many small WAL segments
# (initdb --wal-segsize=1), where the cost per file is everything: opening,
# creating, fsyncing the file, renaming, fsyncing the directory, handing the
# file to a worker and waking whoever waits.
#
#     bench/small_drain.sh
#     BUILDS="today=/tmp/priv-X/usr/lib/postgresql/15/bin old=/tmp/priv-Y/usr/lib/postgresql/15/bin" bench/small_drain.sh
#
# One template cluster with 1 MB segments and SEGMENTS ready segments (WAL
# written by pg_logical_emit_message(), FILL% of each segment, then
# pg_switch_wal()) is made once; every run drains a copy of it, so every
# configuration archives the same files.  Configurations (CONFIGS):
#
#   basic_archive   contrib's archive module (copy, fsync file and directory,
#                   one file at a time), from the first build's server
#   walvault_4      pg_walvault, max_workers = min_workers = 4
#   walvault_8      pg_walvault, max_workers = min_workers = 8
#   walvault_0      pg_walvault, max_workers = 0: the archiver archives
#                   every file itself
#
# BUILDS ("label=bindir ...", default "today=$PG_BINDIR") runs every
# pg_walvault configuration once per build (each bindir a server of the same
# major version with pg_walvault installed), so that two builds are compared
# inside one run.  Every repetition runs all of them, in forward order in odd
# repetitions and reversed in even ones, so that a drift of the machine is
# spread over every configuration.  Before each drain: CHECKPOINT, sync, and
# (as root) the page cache dropped; the 1-minute load average is recorded.
# The report gives medians, spreads (min-max) and the ratio of each median
# rate to basic_archive's.
#
# PROFILE=1 (not for timing) attaches strace -c -w -f to the archiver and,
# separately, to the pg_walvault workers during each drain, and samples
# wait events from pg_stat_activity every 10 ms: system calls, fsyncs and
# waits per file go into the report.
#
# Knobs: SEGMENTS (2000), REPEAT (5), CONFIGS, BUILDS, FILL (80), PORT
# (54700), POLL_MS (10), DRAIN_TIMEOUT (900), DROP_CACHES (auto), KEEP (0),
# PROFILE (0), BENCH_DIR.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

record_knobs SEGMENTS REPEAT CONFIGS BUILDS FILL PORT POLL_MS DRAIN_TIMEOUT DROP_CACHES KEEP PROFILE BENCH_DIR PG_BINDIR

SEGMENTS=${SEGMENTS:-2000}
REPEAT=${REPEAT:-5}
CONFIGS=${CONFIGS:-basic_archive walvault_4 walvault_8 walvault_0}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
BUILDS=${BUILDS:-today=$PG_BINDIR}
FILL=${FILL:-80}
PORT=${PORT:-54700}
POLL_MS=${POLL_MS:-10}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-900}
DROP_CACHES=${DROP_CACHES:-auto}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}

is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
is_uint "$FILL" && ((FILL >= 10 && FILL <= 90)) || die "FILL must be 10..90 (percent)"
is_uint "$POLL_MS" && ((POLL_MS >= 1 && POLL_MS <= 50)) || die "POLL_MS must be 1..50"

declare -A DESC=(
	[basic_archive]="basic_archive (contrib; fsync file + dir, serial)"
	[walvault_4]="pg_walvault, 4 workers"
	[walvault_8]="pg_walvault, 8 workers"
	[walvault_0]="pg_walvault, max_workers = 0 (the archiver archives)"
)
read -r -a CONFIG_LIST <<<"$CONFIGS"
for c in "${CONFIG_LIST[@]}"; do
	[[ -n ${DESC[$c]+x} ]] || die "unknown configuration '$c' (known: ${!DESC[*]})"
done

# builds: label -> bindir, in the order given
declare -A BINDIR
BUILD_LABELS=()
for b in $BUILDS; do
	[[ $b == *=* ]] || die "BUILDS: '$b' is not label=bindir"
	BINDIR[${b%%=*}]=${b#*=}
	BUILD_LABELS+=("${b%%=*}")
done

# the runs of one repetition: basic_archive once, each pg_walvault
# configuration once per build
RUN_KEYS=()
for c in "${CONFIG_LIST[@]}"; do
	if [[ $c == basic_archive ]]; then
		RUN_KEYS+=("$c")
	else
		for l in "${BUILD_LABELS[@]}"; do RUN_KEYS+=("$c@$l"); done
	fi
done

setup_as_pg servers
for l in "${BUILD_LABELS[@]}"; do
	PG_BINDIR=${BINDIR[$l]}
	check_pg_bindir initdb pg_ctl psql postgres pg_config
	[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR ($l)"
done
PG_BINDIR=${BINDIR[${BUILD_LABELS[0]}]}
check_pg_bindir initdb pg_ctl psql postgres pg_config
[[ -f $PKGLIBDIR/basic_archive.so ]] || die "basic_archive.so not in $PKGLIBDIR"
for l in "${BUILD_LABELS[@]}"; do
	[[ $("${BINDIR[$l]}/postgres" --version) == "$PG_VERSION" ]] ||
		die "build $l is not $PG_VERSION: every build must be of the same server"
done
if [[ $PROFILE == 1 ]]; then
	command -v strace >/dev/null || die "PROFILE=1 needs strace"
	((EUID == 0)) || die "PROFILE=1 needs root (strace attaches to the server's processes)"
fi

make_work_dir small-drain
give_work_dir_to_pg
describe_machine
if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then
	DO_DROP=1
else
	DO_DROP=0
fi
CMDLINE="${SET_KNOBS}bench/small_drain.sh"
log "small-file drain: $CMDLINE"
log "runs per repetition: ${RUN_KEYS[*]}; SEGMENTS=$SEGMENTS REPEAT=$REPEAT; load now $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------- cluster ----
init_cluster() { # datadir
	as_pg "$PG_BINDIR/initdb" -D "$1" -A trust -N --wal-segsize=1 >/dev/null ||
		die "initdb $1 failed"
	as_pg tee -a "$1/postgresql.conf" >/dev/null <<EOF

# ---- bench/small_drain.sh ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = 128MB
max_wal_size = $((SEGMENTS * 2 + 1024))MB
checkpoint_timeout = 1h
fsync = on
wal_level = replica
autovacuum = off
archive_mode = on
archive_timeout = 0
max_worker_processes = 16
EOF
}

start_settings() { # config datadir: archiving NOT configured yet
	local c=$1 d=$2
	{
		echo ""
		echo "# ---- $c, archiving not configured yet ----"
		case $c in
		basic_archive)
			echo "archive_library = 'basic_archive'"
			echo "basic_archive.archive_directory = ''" ;;
		walvault_*)
			local n=${c#walvault_}
			echo "shared_preload_libraries = 'pg_walvault'"
			echo "archive_library = 'pg_walvault'"
			echo "pg_walvault.archive_directory = ''"
			echo "pg_walvault.max_workers = $n"
			echo "pg_walvault.min_workers = $n" ;;
		esac
	} | as_pg tee -a "$d/postgresql.conf" >/dev/null
}

archive_settings() { # config datadir archivedir
	case $1 in
	basic_archive) echo "basic_archive.archive_directory = '$3'" ;;
	walvault_*) echo "pg_walvault.archive_directory = '$3'" ;;
	esac | as_pg tee -a "$2/postgresql.conf" >/dev/null
}

# SEGMENTS segments, each FILL% written by one logical message (what is in
# them does not matter without compression), then switched
make_template() {
	local t=$WORK/template
	mkdir -p "$t" && { ((EUID != 0)) || chown postgres: "$t"; }
	init_cluster "$t/data"
	echo "archive_library = 'basic_archive'" | as_pg tee -a "$t/data/postgresql.conf" >/dev/null
	pg_start "$t/data"
	psql_run <<EOF
DO \$\$
DECLARE
	payload text := (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 1048576 * $FILL / 100 / 32) g);
BEGIN
	FOR i IN 1..$SEGMENTS LOOP
		PERFORM pg_logical_emit_message(false, 'bench', payload);
		PERFORM pg_switch_wal();
	END LOOP;
END
\$\$;
EOF
	psql_run -c "CHECKPOINT"
	pg_stop "$t/data"
	TEMPLATE=$t/data
	TEMPLATE_READY=$(count_ready "$TEMPLATE")
	((TEMPLATE_READY >= SEGMENTS)) || die "template has $TEMPLATE_READY .ready files, expected $SEGMENTS"
	log "template: $TEMPLATE_READY ready segments of 1 MB"
}

# ------------------------------------------------------------- profile ----
# profile_start DATADIR RUNDIR KEY, profile_stop: strace on the archiver and
# on the workers, wait events sampled every 10 ms
PROFILE_PIDS=()
profile_start() {
	local d=$1 r=$2 key=$3 apid wpids
	PROFILE_PIDS=()
	apid=$(psql_run -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")
	wpids=$(psql_run -c "SELECT string_agg('-p ' || pid, ' ') FROM pg_stat_activity WHERE backend_type LIKE 'pg_walvault%worker%'")
	strace -c -w -f -o "$r/strace-archiver.txt" -p "$apid" 2>/dev/null &
	PROFILE_PIDS+=($!)
	if [[ -n $wpids ]]; then
		# shellcheck disable=SC2086  # -p PID -p PID...
		strace -c -w -f -o "$r/strace-workers.txt" $wpids 2>/dev/null &
		PROFILE_PIDS+=($!)
	fi
	# \watch needs the query in its buffer: from standard input, not -c
	printf '%s\n' "SELECT backend_type, coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-') FROM pg_stat_activity WHERE backend_type = 'archiver' OR backend_type LIKE 'pg_walvault%worker%'" \
		'\watch 0.01' |
		as_pg "$PG_BINDIR/psql" -X -q -At -h "$WORK" -p "$PORT" -d postgres >"$r/waits.txt" 2>/dev/null &
	PROFILE_PIDS+=($!)
	sleep 1 # strace attached
}

profile_stop() { # rundir key files
	local r=$1 key=$2 files=$3 who f
	kill -INT "${PROFILE_PIDS[@]}" 2>/dev/null || true
	wait "${PROFILE_PIDS[@]}" 2>/dev/null || true
	{
		echo "#### $key: $files files"
		for who in archiver workers; do
			f=$r/strace-$who.txt
			[[ -s $f ]] || continue
			echo
			echo "$who, per file (strace -c -w -f; wall time in the call):"
			echo
			echo '| syscall | calls/file | ms/file |'
			echo '|---|---:|---:|'
			awk -v n="$files" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
					name = $NF; calls = $4; secs = $2
					if (name == "total") { tc = calls; ts = secs; next }
					if (calls / n >= 0.05) printf "| %s | %.2f | %.3f |\n", name, calls / n, secs * 1000 / n
				}
				END { printf "| **all** | **%.1f** | **%.2f** |\n", tc / n, ts * 1000 / n }' "$f" | sort -t'|' -k3 -gr
		done
		echo
		echo "wait events sampled every 10 ms (share of samples, per process type):"
		echo
		awk -F'|' 'NF == 3 { n[$1]++; w[$1 "|" $2 ":" $3]++ }
			END { for (k in w) { split(k, a, "|"); printf "- %s: %s %.0f%%\n", a[1], a[2], 100 * w[k] / n[a[1]] } }' "$r/waits.txt" | sort
		echo
	} >>"$WORK/profile.md"
}

# ------------------------------------------------------------- one run ----
declare -A RUN_SECS RUN_LOADS
DETAIL_ROWS=()
RUN_NO=0

run_one() { # key rep pos
	local key=$1 rep=$2 pos=$3 c=${1%@*} build= r d a ready secs load1 fails workers=
	[[ $key == *@* ]] && build=${key#*@}
	PG_BINDIR=${BINDIR[${build:-${BUILD_LABELS[0]}}]}
	RUN_NO=$((RUN_NO + 1))
	r=$WORK/run-$RUN_NO
	d=$r/data
	a=$r/archive
	mkdir -p "$r" "$a"
	cp -a "$TEMPLATE" "$d"
	((EUID != 0)) || chown -R postgres: "$r"
	chmod 700 "$r"
	start_settings "$c" "$d"
	pg_start "$d"
	if [[ $c == walvault_* ]]; then
		local n=${c#walvault_} idle=0 i
		psql_run -c "CREATE EXTENSION IF NOT EXISTS pg_walvault"
		for ((i = 0; i < 300 && idle < n; i++)); do
			idle=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'")
			((idle >= n)) || sleep 0.1
		done
		((idle >= n)) || log "    WARNING: only $idle of $n workers idle before the reload"
	fi
	ready=$(count_ready "$d")
	(cd "$d/pg_wal/archive_status" && printf '%s\n' *.ready) | sed 's/\.ready$//' >"$r/ready.list"

	psql_run -c "CHECKPOINT"
	sync
	[[ $DO_DROP == 0 ]] || echo 3 >/proc/sys/vm/drop_caches
	load1=$(cut -d' ' -f1 /proc/loadavg)
	archive_settings "$c" "$d" "$a"
	[[ $PROFILE == 0 ]] || profile_start "$d" "$r" "$key"
	secs=$(time_drain "$d") || die "$key: drain failed (server log: $r/server.log)"
	[[ $PROFILE == 0 ]] || profile_stop "$r" "$key" "$ready"

	# every segment that was ready is in the archive, full size, and .done
	local f missing=0 ndone
	while read -r f; do
		[[ -f $a/$f ]] || missing=$((missing + 1))
	done <"$r/ready.list"
	((missing == 0)) || die "$key: VERIFY FAILED: $missing of $ready segments missing from the archive"
	f=$(head -1 "$r/ready.list")
	cmp -s "$d/pg_wal/$f" "$a/$f" || [[ ! -f $d/pg_wal/$f ]] || die "$key: VERIFY FAILED: $f differs"
	ndone=("$d"/pg_wal/archive_status/*.done)
	((${#ndone[@]} >= ready)) || die "$key: VERIFY FAILED: ${#ndone[@]} .done for $ready ready"
	if [[ $c == walvault_* ]]; then
		fails=$(psql_run -c "SELECT failed_count FROM pg_stat_walvault")
		((fails == 0)) || die "$key: $fails failures counted"
		workers=$(psql_run -c "SELECT string_agg(files_archived::text, '+' ORDER BY worker_id) FROM pg_stat_walvault_workers WHERE files_archived > 0")
	fi
	pg_stop "$d"
	rm -rf "$r"

	RUN_SECS[$key]+="$secs "
	RUN_LOADS[$key]+="$load1 "
	log "rep $rep #$pos $key: $ready files in $secs s = $(calc "$ready / $secs" %.0f) files/s (load $load1${workers:+; files per process $workers})"
	DETAIL_ROWS+=("| $rep | $pos | $key | $ready | $secs | $(calc "$ready / $secs" %.0f) | $load1 |")
	sync
}

# ---------------------------------------------------------------- main ----
START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
make_template
ORDERS=()
for ((rep = 1; rep <= REPEAT; rep++)); do
	order=("${RUN_KEYS[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#RUN_KEYS[@]} - 1; i >= 0; i--)); do order+=("${RUN_KEYS[$i]}"); done
	fi
	ORDERS+=("${order[*]}")
	pos=0
	for k in "${order[@]}"; do
		pos=$((pos + 1))
		run_one "$k" "$rep" "$pos"
	done
done
ELAPSED=$(($(date +%s) - START_EPOCH))

# rate of each run, median and spread per key
declare -A MED_RATE SPREAD MED_LOAD
for k in "${RUN_KEYS[@]}"; do
	rates=()
	for s in ${RUN_SECS[$k]}; do rates+=("$(calc "$TEMPLATE_READY / $s")"); done
	MED_RATE[$k]=$(median "${rates[@]}")
	SPREAD[$k]=$(printf '%s\n' "${rates[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')
	# shellcheck disable=SC2086
	MED_LOAD[$k]=$(median ${RUN_LOADS[$k]})
done

OUT=$(mktemp "$WORK/report.XXXXXX")
{
	echo "### Small-file drain (1 MB segments), $DATE_STR"
	echo
	report_preamble
	for l in "${BUILD_LABELS[@]}"; do
		echo "- build \`$l\`: ${BINDIR[$l]} ($(PKGLIBDIR=$("${BINDIR[$l]}/pg_config" --pkglibdir) so_info))"
	done
	echo "- Backlog: $TEMPLATE_READY ready segments of 1 MB (\`initdb --wal-segsize=1\`), a copy of one template per run; fsync = on; timed from \`pg_ctl reload\` until no \`.ready\` is left (polled every $POLL_MS ms); CHECKPOINT, sync$([[ $DO_DROP == 1 ]] && echo ", page cache dropped") before each drain"
	echo "- Order: forward in odd repetitions, reversed in even ones: $(printf '%s; ' "${ORDERS[@]:0:2}")"
	echo "- Load average at start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg); ${ELAPSED} s in all"
	[[ $PROFILE == 0 ]] || echo "- **PROFILE=1: strace was attached, the times are not comparable to other runs**"
	echo
	echo "| run | median files/s | spread (min–max) | vs basic_archive | median load1 | all runs (s) |"
	echo "|---|---:|---:|---:|---:|---|"
	for k in "${RUN_KEYS[@]}"; do
		ratio=n/a
		[[ -z ${MED_RATE[basic_archive]+x} ]] || ratio=$(calc "${MED_RATE[$k]} / ${MED_RATE[basic_archive]}" %.2f)×
		printf '| %s | %.0f | %s | %s | %s | %s |\n' "$k" "${MED_RATE[$k]}" "${SPREAD[$k]}" "$ratio" "${MED_LOAD[$k]}" \
			"$(echo "${RUN_SECS[$k]}" | xargs | sed 's/ /, /g')"
	done
	echo
	echo "Per repetition, each run against the basic_archive run of the same repetition:"
	echo
	printf '| rep |'
	for k in "${RUN_KEYS[@]}"; do [[ $k == basic_archive ]] || printf ' %s |' "$k"; done
	echo
	printf '|---:|'
	for k in "${RUN_KEYS[@]}"; do [[ $k == basic_archive ]] || printf -- '---:|'; done
	echo
	if [[ -n ${RUN_SECS[basic_archive]+x} ]]; then
		read -r -a base <<<"${RUN_SECS[basic_archive]}"
		for ((i = 0; i < REPEAT; i++)); do
			printf '| %d |' $((i + 1))
			for k in "${RUN_KEYS[@]}"; do
				[[ $k == basic_archive ]] && continue
				read -r -a s <<<"${RUN_SECS[$k]}"
				printf ' %s |' "$(calc "${base[$i]} / ${s[$i]}" %.2f)"
			done
			echo
		done
	fi
	echo
	all_runs_details "| rep | # | run | files | s | files/s | load1 |" "|---:|---:|---|---:|---:|---:|---:|" "${DETAIL_ROWS[@]}"
	[[ ! -f $WORK/profile.md ]] || { echo; cat "$WORK/profile.md"; }
} >"$OUT"
publish_report small-drain

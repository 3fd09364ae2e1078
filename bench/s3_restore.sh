#!/usr/bin/env bash
#
# bench/s3_restore.sh -- how long a point-in-time recovery from an S3
# object store takes: pg_walvault_restore -u serial against -j N.
#
# The store is a throwaway Ceph radosgw with HAProxy in front of it
# (scripts/rgw.sh start DIR --proxy); every restore goes through the proxy,
# which holds each request LATENCY_MS ms, as the network to a remote store
# would.  A primary archives with pg_walvault (pg_walvault.archive_url,
# straight to radosgw) while SEGMENTS segments of WAL are generated after a
# base backup.  Each run then copies the base backup, sets
#
#   restore_command = 'pg_walvault_restore [-j N] -u s3://BUCKET/PREFIX
#                      --s3-endpoint PROXY --s3-uri-style path %f %p'
#
# creates recovery.signal, starts the server and waits until recovery has
# ended; as in bench/restore.sh the time is the server's own "redo done ...
# elapsed" (first to last record replayed), and every run is checked to
# have restored up to the last archived segment.  floor: the same WAL
# (downloaded from the store) copied into pg_wal beforehand and
# restore_command = 'false': replay alone, the fastest any restore_command
# can make recovery.  Configurations alternate (reversed in even
# repetitions).  See bench/README.md for the knobs.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

record_knobs S3_NODELAY SEGMENTS REPEAT CONFIGS LATENCY_MS VERBOSE BENCH_DIR PG_BINDIR PORT FILL DROP_CACHES KEEP RUN_TIMEOUT STRICT

SEGMENTS=${SEGMENTS:-64}
REPEAT=${REPEAT:-3}
CONFIGS=${CONFIGS:-floor serial j8}
LATENCY_MS=${LATENCY_MS:-30}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54850}
FILL=${FILL:-85}
DROP_CACHES=${DROP_CACHES:-auto}
KEEP=${KEEP:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
STRICT=${STRICT:-0}
VERBOSE=${VERBOSE:-0} # 1: pg_walvault_restore -v (every step in the server log; KEEP=1 keeps the last run's)

is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
is_uint "$LATENCY_MS" || die "LATENCY_MS must be an integer (ms)"
is_uint "$RUN_TIMEOUT" || die "RUN_TIMEOUT must be an integer (seconds)"
read -r -a CONFIG_LIST <<<"$CONFIGS"
((${#CONFIG_LIST[@]} > 0)) || die "CONFIGS is empty"
for c in "${CONFIG_LIST[@]}"; do
	[[ $c == floor || $c == serial || $c =~ ^j[0-9]+$ ]] || die "unknown configuration '$c' (floor serial jN)"
done

setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config pg_basebackup pg_walvault_restore
[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)"
RESTORE_PROG=$PG_BINDIR/pg_walvault_restore
"$RESTORE_PROG" --help | grep -q -- '--url' || die "$RESTORE_PROG has no -u/--url (object store): install a newer build"

make_work_dir s3-restore
give_work_dir_to_pg
s3_start
PROBES=()
for l in 0 "$LATENCY_MS"; do
	s3_delay "$l"
	read -r pp pr <<<"$(s3_probe)"
	PROBES+=("at $l ms: $pp ms (radosgw itself: $pr ms)")
	log "a listing through the proxy at $l ms per request: $pp ms (radosgw itself: $pr ms)"
done
PREFIX=restore/main
URL=s3://$RGW_BUCKET/$PREFIX

if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then DO_DROP=1; else DO_DROP=0; fi
describe_machine
CMDLINE="${SET_KNOBS}bench/s3_restore.sh"
log "pg_walvault object store restore benchmark: $CMDLINE"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS; work directory $WORK"
log "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
((SEGMENTS >= 32)) || log "WARNING: SEGMENTS=$SEGMENTS < 32: a trial, not a measurement"

# ---------------------------------------------------------- the archive ----
P=$WORK/primary/data
mkdir -p "$WORK/primary" && { ((EUID != 0)) || chown postgres: "$WORK/primary"; }
log "primary: initdb, base backup, $SEGMENTS segments of WAL archived by pg_walvault into $URL"
as_pg "$PG_BINDIR/initdb" -D "$P" -A trust -N >/dev/null || die "initdb failed"
as_pg tee -a "$P/postgresql.conf" >/dev/null <<EOF

# ---- bench/s3_restore.sh ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = 256MB
max_wal_size = $((SEGMENTS * 32 + 1024))MB
checkpoint_timeout = 1h
autovacuum = off
archive_mode = on
shared_preload_libraries = 'pg_walvault'
archive_library = 'pg_walvault'
pg_walvault.archive_url = '$URL'
pg_walvault.s3_endpoint = '$RGW_ENDPOINT'
pg_walvault.s3_uri_style = 'path'
pg_walvault.s3_region = '$RGW_REGION'
pg_walvault.max_workers = 4
EOF
s3_delay 0
pg_start "$P"
as_pg "$PG_BINDIR/pg_basebackup" -h "$WORK" -p "$PORT" -D "$WORK/base" -X none -c fast -N ||
	die "pg_basebackup failed"
fill_segments "$SEGMENTS"
LAST_SEG=$(psql_run -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
psql_run -c "SELECT pg_switch_wal()" >/dev/null
for ((i = 0; i < 6000; i++)); do
	[[ $(psql_run -c "SELECT coalesce(last_archived_wal >= '$LAST_SEG', false) FROM pg_stat_archiver") == t ]] && break
	sleep 0.1
done
((i < 6000)) || die "the primary did not archive up to $LAST_SEG"
pg_stop "$P"
# the WAL as the store holds it: for floor, and a check of the archive
WALCOPY=$WORK/wal-copy
mkdir -p "$WALCOPY"
s3_keys "$PREFIX" | cut -f1 >"$WORK/keys" || die "could not list $URL"
while read -r k; do
	s3_get "$k" "$WALCOPY/${k##*/}" || die "could not download $k"
done <"$WORK/keys"
((EUID != 0)) || chown -R postgres: "$WALCOPY"
NSEG=$(count_archived "$WALCOPY")
[[ -f $WALCOPY/$LAST_SEG ]] || die "the store lacks $LAST_SEG"
WAL_MIB=$((NSEG * 16))
log "archive: $NSEG segments ($WAL_MIB MiB) in $URL, last $LAST_SEG"
s3_delay "$LATENCY_MS"
log "the proxy now holds every request $LATENCY_MS ms"

restore_command() { # config
	local v=""
	[[ $VERBOSE != 1 ]] || v="-v "
	case $1 in
	floor) echo "false" ;;
	serial) echo "$RESTORE_PROG $v-u $URL --s3-endpoint $PROXY_ENDPOINT --s3-uri-style path %f %p" ;;
	j*) echo "$RESTORE_PROG $v-j ${1#j} -u $URL --s3-endpoint $PROXY_ENDPOINT --s3-uri-style path %f %p" ;;
	esac
}

# ------------------------------------------------------------- one run ----
declare -A REDO WALL STCPU BUSY OTCPU
DETAIL_ROWS=()
LOAD_MAX=0

run_one() { # config rep
	local c=$1 rep=$2 d=$WORK/run/data l=$WORK/run/server.log t0 t1 redo wall last nrest load1 i st0 st1 m0 m1 stcpu busy otcpu
	rm -rf "$WORK/run"
	mkdir -p "$WORK/run"
	cp -a "$WORK/base" "$d"
	[[ $c != floor ]] || cp "$WALCOPY"/[0-9A-F]*[0-9A-F] "$d/pg_wal/"
	((EUID != 0)) || chown -R postgres: "$WORK/run"
	as_pg tee -a "$d/postgresql.conf" >/dev/null <<EOF

# ---- bench/s3_restore.sh: $c ----
archive_mode = off
archive_library = ''
shared_preload_libraries = ''
restore_command = '$(restore_command "$c")'
EOF
	as_pg touch "$d/recovery.signal"
	sync
	[[ $DO_DROP == 0 ]] || echo 3 >/proc/sys/vm/drop_caches
	load1=$(cut -d' ' -f1 /proc/loadavg)
	awk -v a="$load1" -v b="$LOAD_MAX" 'BEGIN { exit !(a > b) }' && LOAD_MAX=$load1
	st0=$(proc_ticks "${S3_PIDS[@]}")
	m0=$(machine_ticks)
	t0=$(date +%s.%N)
	server_started "$d"
	as_pg "$PG_BINDIR/pg_ctl" -D "$d" -l "$l" start >/dev/null || die "$c: server did not start"
	for ((i = 0; ; i++)); do
		grep -q 'database system is ready to accept connections' "$l" 2>/dev/null && break
		grep -qE 'FATAL|PANIC' "$l" 2>/dev/null && { tail -20 "$l" >&2; die "$c: recovery failed"; }
		((i < RUN_TIMEOUT * 20)) || die "$c: recovery did not end in $RUN_TIMEOUT s"
		sleep 0.05
	done
	t1=$(date +%s.%N)
	m1=$(machine_ticks)
	st1=$(proc_ticks "${S3_PIDS[@]}")
	wall=$(calc "$t1 - $t0" %.2f)
	read -r -a m0 <<<"$m0"
	read -r -a m1 <<<"$m1"
	stcpu=$(calc "($st1 - $st0) / $CLK_TCK" %.2f)
	busy=$(calc "100 * (${m1[0]} - ${m0[0]}) / (${m1[1]} - ${m0[1]})" %.0f)
	otcpu=$(calc "(${m1[0]} - ${m0[0]}) / $CLK_TCK - $stcpu" %.2f)
	redo=$(sed -n 's/.*redo done at .* elapsed: \([0-9.]*\) s.*/\1/p' "$l" | tail -1)
	[[ -n $redo ]] || die "$c: no 'redo done' line in $l"
	last=$(grep -o 'restored log file "[0-9A-F]\{24\}"' "$l" | sort | tail -1 | grep -o '[0-9A-F]\{24\}' || true)
	nrest=$(grep -c 'restored log file "[0-9A-F]\{24\}"' "$l" || true)
	if [[ $c == floor ]]; then
		# replayed from pg_wal: the end of redo must be in the last segment
		last=$(sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$l" | tail -1)
		last=$(as_pg "$PG_BINDIR/psql" -X -At -h "$WORK" -p "$PORT" -d postgres -c "SELECT pg_walfile_name('$last'::pg_lsn)" 2>/dev/null |
			sed 's/^0000000[0-9A-F]/00000001/')
	fi
	[[ $last == "$LAST_SEG" ]] || die "$c: VERIFY FAILED: recovery replayed up to $last, the archive ends with $LAST_SEG"
	as_pg "$PG_BINDIR/pg_ctl" -D "$d" -m immediate -w -t 300 stop >/dev/null || die "$c: server did not stop"
	server_stopped "$d"
	REDO[$c]+="$redo "
	WALL[$c]+="$wall "
	STCPU[$c]+="$stcpu "
	BUSY[$c]+="$busy "
	OTCPU[$c]+="$otcpu "
	log "    $c: redo $redo s, wall $wall s; $nrest segments restored up to $last; load $load1; CPU s: store $stcpu, the rest $otcpu (machine $busy% busy)"
	DETAIL_ROWS+=("| $rep | $c | $redo | $wall | $nrest | $load1 | $busy | $stcpu | $otcpu |")
}

START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ORDERS=()
for ((rep = 1; rep <= REPEAT; rep++)); do
	order=("${CONFIG_LIST[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#CONFIG_LIST[@]} - 1; i >= 0; i--)); do order+=("${CONFIG_LIST[$i]}"); done
	fi
	ORDERS+=("rep $rep: ${order[*]}")
	for c in "${order[@]}"; do
		log "rep $rep/$REPEAT: $c"
		run_one "$c" "$rep"
	done
done
ELAPSED=$(($(date +%s) - START_EPOCH))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# -------------------------------------------------------------- report ----
med() { local v; read -r -a v <<<"$1"; median "${v[@]}"; }
spread() { printf '%s\n' $1 | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }
OUT=$(mktemp "$WORK/report.XXXXXX")
SO_INFO_END=$(so_info)
VERDICT_FAIL=0
{
	echo "### Point-in-time recovery from an object store, $DATE_STR"
	echo
	report_preamble "data directory on $(df --output=source "$WORK" | tail -1); the store (radosgw, memstore) and HAProxy on the same machine"
	echo "- pg_walvault_restore: $RESTORE_PROG, built $(date -r "$RESTORE_PROG" '+%Y-%m-%d %H:%M'), sha256 $(sha256sum "$RESTORE_PROG" | cut -c1-12)"
	echo "- Store: Ceph radosgw ($(radosgw --version 2>/dev/null | awk '{ print $3 }' || echo "?"); objects in memory) behind HAProxy, from \`scripts/rgw.sh start DIR --proxy\`; the proxy holds every request **$LATENCY_MS ms**; every restore goes through it"
	echo "- WAL: $NSEG segments of 16 MiB ($WAL_MIB MiB; $SEGMENTS generated, each ≥ $FILL% INSERTs of random md5 rows), archived by pg_walvault into \`$URL\`, replayed from a base backup with no recovery target; every run checked to restore up to $LAST_SEG"
	echo "- restore_command: \`pg_walvault_restore [-j N] -u $URL --s3-endpoint PROXY --s3-uri-style path %f %p\`; credentials from the server's environment"
	echo "- Time: the server's \`redo done ... elapsed\` (first to last record replayed, restores included); wall: from \`pg_ctl start\` to \"ready to accept connections\". Page cache dropped before each run: $([[ $DO_DROP == 1 ]] && echo yes || echo no)"
	echo "- floor: the same WAL (downloaded from the store) copied into \`pg_wal\` beforehand and \`restore_command = 'false'\`: replay alone"
	if [[ ${S3_NODELAY:-1} == 1 ]]; then
		nd="with \`tcp_nodelay=1\` (as rgw.sh starts it, Nagle's algorithm and HAProxy's delayed ACKs add ~40 ms to small answers: see \`s3_start\` in lib.sh)"
	else
		nd="as rgw.sh starts it (S3_NODELAY=0: Nagle's algorithm on)"
	fi
	echo "- radosgw $nd. Median of 20 listings (curl, a new connection each) through the proxy $(IFS=';'; echo "${PROBES[*]}" | sed 's/;/; /g')"
	echo "- Order (alternating): $(IFS=';'; echo "${ORDERS[*]}" | sed 's/;/; /g')"
	echo "- Load average at start: $LOAD_START; at the end: $LOAD_END; highest 1-min load at a start: $LOAD_MAX; total benchmark time ${ELAPSED} s"
	[[ $SO_INFO_END == "$SO_INFO" ]] || echo "- NOTE: pg_walvault.so was reinstalled during the run (now: $SO_INFO_END); only the primary loads it"
	echo
	echo "| restore_command | median redo s | min–max s | MiB/s | vs serial | median wall s | busy | store CPU s | rest CPU s | all runs, redo s |"
	echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"
	s=""
	[[ -z ${REDO[serial]+x} ]] || s=$(med "${REDO[serial]}")
	for c in "${CONFIG_LIST[@]}"; do
		m=$(med "${REDO[$c]}")
		r=""
		[[ -z $s || $c == floor ]] || r=$(calc "$s / $m" %.2f)×
		name=$c
		[[ $c != j* ]] || name="-j ${c#j}"
		[[ $c != floor ]] || name="floor: replay only"
		printf '| %s | %.2f | %s | %.0f | %s | %.2f | %s%% | %.2f | %.2f | %s |\n' "$name" "$m" "$(spread "${REDO[$c]}")" "$(calc "$WAL_MIB / $m")" "$r" \
			"$(med "${WALL[$c]}")" "$(med "${BUSY[$c]}")" "$(med "${STCPU[$c]}")" "$(med "${OTCPU[$c]}")" \
			"$(echo "${REDO[$c]}" | xargs | sed 's/ /, /g')"
	done
	if [[ -n $s && -n ${REDO[j8]+x} ]]; then
		echo
		echo "**Goal** (ratio of median redo times, same run):"
		echo
		echo "| goal | required | measured | result |"
		echo "|---|---:|---:|---|"
		rt=$(calc "$s / $(med "${REDO[j8]}")" %.2f)
		if awk -v r="$rt" 'BEGIN { exit !(r >= 3) }'; then res=PASS; else res=FAIL; VERDICT_FAIL=1; fi
		echo "| (d) \`-j 8\` vs serial, $LATENCY_MS ms per request | ≥ 3× | ${rt}× | **$res** |"
		if [[ -n ${REDO[floor]+x} ]]; then
			echo
			echo "Bound: serial ÷ floor = $(calc "$s / $(med "${REDO[floor]}")" %.2f)×: prefetching hides the restores, not the replay, so no restore_command can do better than that here."
		fi
	fi
	echo
	echo
	echo "CPU, from \`pg_ctl start\` to the end of recovery (from /proc): *store*: radosgw, its OSD and monitor, HAProxy; *rest*: everything else on the machine (replay, pg_walvault_restore and its prefetcher, other sessions' work); *busy*: share of the $(nproc) CPUs in use."
	echo
	all_runs_details "| rep | restore_command | redo s | wall s | segments restored | load1 | busy % | store CPU s | rest CPU s |" \
		"|---:|---|---:|---:|---:|---:|---:|---:|---:|" "${DETAIL_ROWS[@]}"
} >"$OUT"
publish_report s3-restore
if [[ $STRICT == 1 && $VERDICT_FAIL == 1 ]]; then
	log "the goal was not met (STRICT=1)"
	exit 3
fi
exit 0

#!/usr/bin/env bash
#
# bench/s3_drain.sh -- how fast a backlog of ready WAL segments is drained
# to an S3-compatible object store, with and without per-request latency.
#
# The store is a throwaway Ceph radosgw with HAProxy in front of it
# (scripts/rgw.sh start DIR --proxy); the proxy holds every request
# LATENCY ms (its DIR/proxy/delay_ms, set before each run), as the network
# to a remote store would.  Every configuration goes through the proxy.
# Configurations (CONFIGS):
#
#   walvault_8      pg_walvault, 8 workers, pg_walvault.archive_url: libcurl
#                   uploads, one kept-alive connection per process
#   aws_cmd         PostgreSQL's own archiver, no pg_walvault:
#                   archive_command = 'aws s3 cp %p s3://BUCKET/PREFIX/%f ...'
#   walvault_8_aws  pg_walvault, 8 workers running that same aws command as
#                   pg_walvault.archive_command
#   walvault_8_1m   1 MB WAL segments (initdb --wal-segsize=1): 8 workers,
#                   archive_url
#   walvault_0_1m   1 MB WAL segments: pg_walvault.max_workers = 0, the
#                   server's archiver uploads every file itself (same code)
#
# One measurement is bench/drain.sh's: a fresh copy of a template cluster
# holding a backlog of ready segments (WAL generated while archiving is not
# configured), started with archiving still not configured; then the
# archive_url or command is set, the server reloaded, and the time from the
# reload until pg_wal/archive_status has no .ready file left is measured
# (time_drain).  Every run is verified: every segment that was ready is
# listed in the store under the run's own prefix, full size, the first and
# last are downloaded and compared with pg_wal; then the prefix is emptied.
# Connections and requests: pg_stat_walvault_store, cross-checked with
# HAProxy's counters (its stats socket); CPU time of the server, the store
# and the rest of the machine during each drain, from /proc.
#
# Runs alternate: in each repetition every configuration at every latency,
# in reverse order in even repetitions.  See bench/README.md for the knobs.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- knobs ----
record_knobs S3_NODELAY SEGMENTS SMALL_SEGMENTS REPEAT LATENCY_MS LATENCIES CONFIGS COMPRESSION BENCH_DIR PG_BINDIR PORT SHARED_BUFFERS FILL POLL_MS DRAIN_TIMEOUT DROP_CACHES KEEP STRICT AWS_CLI

SEGMENTS=${SEGMENTS:-24}             # 16 MB segments in the backlog
SMALL_SEGMENTS=${SMALL_SEGMENTS:-320} # 1 MB segments in the backlog of *_1m
REPEAT=${REPEAT:-3}
LATENCY_MS=${LATENCY_MS:-30}
LATENCIES=${LATENCIES:-$LATENCY_MS 0}
CONFIGS=${CONFIGS:-walvault_8 aws_cmd walvault_8_aws walvault_8_1m walvault_0_1m}
COMPRESSION=${COMPRESSION:-off}      # pg_walvault.compression of the archive_url configurations
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54650}
SHARED_BUFFERS=${SHARED_BUFFERS:-256MB}
FILL=${FILL:-85}
POLL_MS=${POLL_MS:-10}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
DROP_CACHES=${DROP_CACHES:-auto}
KEEP=${KEEP:-0}
STRICT=${STRICT:-0}
AWS_CLI=${AWS_CLI:-/usr/bin/aws}     # Debian's awscli: root's PATH may hold another one postgres cannot run
WORKERS=8

is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$SMALL_SEGMENTS" && ((SMALL_SEGMENTS >= 1)) || die "SMALL_SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
is_uint "$LATENCY_MS" || die "LATENCY_MS must be an integer (ms)"
is_uint "$PORT" && ((PORT > 1024 && PORT < 65536)) || die "PORT must be 1025..65535"
is_uint "$FILL" && ((FILL >= 10 && FILL <= 90)) || die "FILL must be 10..90 (percent)"
is_uint "$POLL_MS" && ((POLL_MS >= 1 && POLL_MS <= 50)) || die "POLL_MS must be 1..50"
is_uint "$DRAIN_TIMEOUT" || die "DRAIN_TIMEOUT must be an integer (seconds)"
read -r -a LATENCY_LIST <<<"$LATENCIES"
((${#LATENCY_LIST[@]} > 0)) || die "LATENCIES is empty"
for l in "${LATENCY_LIST[@]}"; do is_uint "$l" || die "LATENCIES: '$l' is not a number of ms"; done
case $COMPRESSION in
off) SFX="" ;;
zstd*) SFX=.zst ;;
lz4*) SFX=.lz4 ;;
gzip*) SFX=.gz ;;
*) die "COMPRESSION must be off, or zstd, lz4, gzip with an optional :LEVEL" ;;
esac

AWS_DESC="archive_command \`aws s3 cp %p s3://BUCKET/PREFIX/%f --endpoint-url PROXY --only-show-errors\`"
declare -A DESC=(
	[walvault_8]="pg_walvault, $WORKERS workers, archive_url"
	[aws_cmd]="$AWS_DESC (PostgreSQL's archiver, no pg_walvault)"
	[walvault_8_aws]="pg_walvault, $WORKERS workers, the same \`aws s3 cp\` as pg_walvault.archive_command"
	[walvault_8_1m]="1 MB segments: pg_walvault, $WORKERS workers, archive_url"
	[walvault_0_1m]="1 MB segments: pg_walvault, max_workers = 0 (the archiver alone, same code)"
)
[[ $COMPRESSION == off ]] || for c in walvault_8 walvault_8_1m walvault_0_1m; do DESC[$c]+=", compression = '$COMPRESSION'"; done
read -r -a CONFIG_LIST <<<"$CONFIGS"
((${#CONFIG_LIST[@]} > 0)) || die "CONFIGS is empty"
NEED_BIG=0 NEED_SMALL=0
for c in "${CONFIG_LIST[@]}"; do
	[[ -n ${DESC[$c]+x} ]] || die "unknown configuration '$c' (known: ${!DESC[*]})"
	if [[ $c == *_1m ]]; then NEED_SMALL=1; else NEED_BIG=1; fi
done
seg_mb() { [[ $1 == *_1m ]] && echo 1 || echo 16; }
uses_url() { [[ $1 == walvault_8 || $1 == walvault_8_1m || $1 == walvault_0_1m ]]; }

# ------------------------------------------------------------ who runs ----
setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config
[[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)"
[[ -z $SFX ]] || [[ -x $PG_BINDIR/pg_walvault_restore ]] || die "$PG_BINDIR/pg_walvault_restore not found (run make install)"
command -v perl >/dev/null || die "perl is needed for the timing loop"
[[ " ${CONFIG_LIST[*]} " != *_aws* && " ${CONFIG_LIST[*]} " != *aws_cmd* ]] || [[ -x $AWS_CLI ]] ||
	die "$AWS_CLI not found (apt-get install awscli, or set AWS_CLI)"

make_work_dir s3-drain
give_work_dir_to_pg
s3_start
PROBES=()
for l in "${LATENCY_LIST[@]}"; do
	s3_delay "$l"
	read -r pp pr <<<"$(s3_probe)"
	PROBES+=("at $l ms: $pp ms (radosgw itself: $pr ms)")
	log "a listing through the proxy at $l ms per request: $pp ms (radosgw itself: $pr ms)"
done

if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then DO_DROP=1; else DO_DROP=0; fi
describe_machine
CMDLINE="${SET_KNOBS}bench/s3_drain.sh"
log "pg_walvault object store drain benchmark: $CMDLINE"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS; work directory $WORK"
log "configurations: ${CONFIG_LIST[*]}; latencies (ms per request): ${LATENCY_LIST[*]}; REPEAT=$REPEAT"
log "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"

# ----------------------------------------------------------- clusters ----
init_cluster() { # datadir [initdb args]
	local d=$1
	shift
	as_pg "$PG_BINDIR/initdb" -D "$d" -A trust -N "$@" >/dev/null || die "initdb $d failed"
	as_pg tee -a "$d/postgresql.conf" >/dev/null <<EOF

# ---- bench/s3_drain.sh: common settings ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = $SHARED_BUFFERS
max_wal_size = 8GB
checkpoint_timeout = 1h
fsync = on
autovacuum = off
max_worker_processes = 24
archive_mode = on
archive_timeout = 0
archive_command = ''
EOF
}

# a template per segment size: SEGMENTS (or SMALL_SEGMENTS) ready segments
declare -A TEMPLATE TEMPLATE_READY
make_template() { # seg_mb count
	local mb=$1 n=$2 t=$WORK/template-$1mb ready
	mkdir -p "$t/data" && { ((EUID != 0)) || chown -R postgres: "$t"; }
	log "template cluster, ${mb} MB segments: initdb + backlog of $n segments"
	init_cluster "$t/data" --wal-segsize="$mb"
	pg_start "$t/data"
	fill_segments "$n"
	psql_run -c "CHECKPOINT"
	pg_stop "$t/data"
	ready=$(count_ready "$t/data")
	((ready >= n)) || die "template has $ready .ready files, expected at least $n"
	TEMPLATE[$mb]=$t/data
	TEMPLATE_READY[$mb]=$ready
	log "template ready: $ready ready segments of $mb MB"
}

aws_command() { # prefix: the archive command of aws_cmd and walvault_8_aws
	echo "$AWS_CLI s3 cp %p s3://$RGW_BUCKET/$1/%f --endpoint-url $PROXY_ENDPOINT --only-show-errors"
}

start_settings() { # config datadir: archiving NOT configured yet
	local c=$1
	{
		echo ""
		echo "# ---- bench/s3_drain.sh: $c, archiving not configured yet ----"
		if [[ $c == walvault_* ]]; then
			echo "shared_preload_libraries = 'pg_walvault'"
			echo "archive_library = 'pg_walvault'"
			echo "pg_walvault.archive_url = ''"
			echo "pg_walvault.s3_endpoint = '$PROXY_ENDPOINT'"
			echo "pg_walvault.s3_uri_style = 'path'"
			echo "pg_walvault.s3_region = '$RGW_REGION'"
			echo "pg_walvault.compression = '$COMPRESSION'"
			if [[ $c == walvault_0_* ]]; then
				echo "pg_walvault.max_workers = 0"
				echo "pg_walvault.min_workers = 0"
			else
				echo "pg_walvault.max_workers = $WORKERS"
				echo "pg_walvault.min_workers = $WORKERS"
			fi
		fi
	} | as_pg tee -a "$2/postgresql.conf" >/dev/null
}

archive_settings() { # config datadir prefix: what the reload turns on
	local c=$1
	{
		echo ""
		echo "# ---- bench/s3_drain.sh: $c, archiving configured ----"
		case $c in
		aws_cmd) echo "archive_command = '$(aws_command "$3")'" ;;
		walvault_8_aws) echo "pg_walvault.archive_command = '$(aws_command "$3")'" ;;
		*) echo "pg_walvault.archive_url = 's3://$RGW_BUCKET/$3'" ;;
		esac
	} | as_pg tee -a "$2/postgresql.conf" >/dev/null
}

# ------------------------------------------------------ CPU accounting ----
# Where the CPU goes during a drain: the server's processes (the archive
# commands they ran and waited for included: aws CLI), the store's daemons
# (radosgw, OSD, monitor, HAProxy) and the whole machine, from /proc.
server_ticks() { # datadir: the postmaster and its children
	local pm
	pm=$(head -1 "$1/postmaster.pid")
	# shellcheck disable=SC2046  # one word per pid
	proc_ticks "$pm" $(ps -o pid= --ppid "$pm")
}

# ------------------------------------------------------------- one run ----
declare -A RUN_SECS RUN_FILES RUN_CONNS RUN_PXCONN RUN_PXREQ RUN_REQS RUN_PROCS RUN_REQMS RUN_PGCPU RUN_STCPU RUN_OTCPU RUN_BUSY
DETAIL_ROWS=()
LOAD_MAX=0
RUN_NO=0

run_one() { # config latency rep pos
	local c=$1 lat=$2 rep=$3 pos=$4 key="$1@$2" mb r d prefix ready secs load1 warm="" px0 px1 pxconn pxreq
	local store="" conns=- reqs=- reqms=- p50=- p99=- procs=- workers=- build=""
	mb=$(seg_mb "$c")
	RUN_NO=$((RUN_NO + 1))
	r=$WORK/run-$RUN_NO
	d=$r/data
	prefix=drain/run-$RUN_NO
	mkdir -p "$r" && { ((EUID != 0)) || chown postgres: "$r"; }
	chmod 700 "$r"
	log "rep $rep/$REPEAT, run $pos/$((${#CONFIG_LIST[@]} * ${#LATENCY_LIST[@]})): $c, $lat ms per request"
	[[ $c != walvault_* ]] || build="build $(sha256sum "$PKGLIBDIR/pg_walvault.so" | cut -c1-8)"
	cp -a "${TEMPLATE[$mb]}" "$d"
	start_settings "$c" "$d"
	pg_start "$d"
	if [[ $c == walvault_* ]]; then
		psql_run -c "CREATE EXTENSION IF NOT EXISTS pg_walvault"
		if [[ $c == walvault_8* ]]; then
			local i n=0
			for ((i = 0; i < 300; i++)); do
				n=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'")
				((n >= WORKERS)) && break
				sleep 0.1
			done
			warm="$n idle workers before reload; "
			((n >= WORKERS)) || log "    WARNING: only $n archive workers idle before the reload"
		fi
	fi
	ready=$(count_ready "$d")
	((ready >= ${TEMPLATE_READY[$mb]})) || die "$c: only $ready .ready files, expected ${TEMPLATE_READY[$mb]}"
	(cd "$d/pg_wal/archive_status" && printf '%s\n' *.ready) | sed 's/\.ready$//' | sort >"$r/ready.list"
	[[ -z $(s3_keys "$prefix") ]] || die "$c: objects under $prefix/ before the reload"

	psql_run -c "CHECKPOINT"
	sync
	[[ $DO_DROP == 0 ]] || echo 3 >/proc/sys/vm/drop_caches || die "could not drop the page cache"
	s3_delay "$lat"
	load1=$(cut -d' ' -f1 /proc/loadavg)
	awk -v a="$load1" -v b="$LOAD_MAX" 'BEGIN { exit !(a > b) }' && LOAD_MAX=$load1
	archive_settings "$c" "$d" "$prefix"
	px0=$(proxy_counters)
	log "    $ready ready segments of $mb MB; ${warm}load $load1; reload and drain..."
	local pg0 st0 m0 pg1 st1 m1 pgcpu stcpu busy otcpu
	pg0=$(server_ticks "$d")
	st0=$(proc_ticks "${S3_PIDS[@]}")
	m0=$(machine_ticks)
	secs=$(time_drain "$d") || die "$c: drain failed (server log: $r/server.log)"
	m1=$(machine_ticks)
	st1=$(proc_ticks "${S3_PIDS[@]}")
	pg1=$(server_ticks "$d")
	pgcpu=$(calc "($pg1 - $pg0) / $CLK_TCK" %.2f)
	stcpu=$(calc "($st1 - $st0) / $CLK_TCK" %.2f)
	read -r -a m0 <<<"$m0"
	read -r -a m1 <<<"$m1"
	busy=$(calc "100 * (${m1[0]} - ${m0[0]}) / (${m1[1]} - ${m0[1]})" %.0f)
	otcpu=$(calc "(${m1[0]} - ${m0[0]}) / $CLK_TCK - $pgcpu - $stcpu" %.2f)
	px1=$(proxy_counters)
	read -r -a px0 <<<"$px0"
	read -r -a px1 <<<"$px1"
	pxconn=$((px1[0] - px0[0]))
	pxreq=$((px1[1] - px0[1]))

	# ---- verify: every ready segment is in the store, full size ----
	local sfx="" f missing=0 badsize=0 nkeys first last
	uses_url "$c" && sfx=$SFX
	s3_keys "$prefix" | sed "s|^$prefix/||" >"$r/keys"
	nkeys=$(wc -l <"$r/keys")
	while read -r f; do
		local line
		line=$(grep -m1 "^$f$sfx	" "$r/keys" || true)
		if [[ -z $line ]]; then
			missing=$((missing + 1))
		elif [[ -z $sfx && $f =~ ^[0-9A-F]{24}$ ]] && ((${line##*	} != mb * 1048576)); then
			badsize=$((badsize + 1))
		fi
	done <"$r/ready.list"
	((missing == 0 && badsize == 0)) ||
		die "$c: VERIFY FAILED: $missing of $ready ready segments missing from s3://$RGW_BUCKET/$prefix/, $badsize of wrong size"
	first=$(head -1 "$r/ready.list")
	last=$(tail -1 "$r/ready.list")
	for f in "$first" "$last"; do
		[[ -f $d/pg_wal/$f ]] || continue
		rm -f "$WORK/verify.seg"
		if [[ -n $sfx ]]; then
			as_pg "$PG_BINDIR/pg_walvault_restore" -u "s3://$RGW_BUCKET/$prefix" --s3-endpoint "$RGW_ENDPOINT" \
				--s3-uri-style path "$f" "$WORK/verify.seg" || die "$c: VERIFY FAILED: pg_walvault_restore could not restore $f"
		else
			s3_get "$prefix/$f" "$WORK/verify.seg" || die "$c: VERIFY FAILED: could not download $f"
		fi
		cmp -s "$d/pg_wal/$f" "$WORK/verify.seg" || die "$c: VERIFY FAILED: $f in the store differs from pg_wal/$f"
	done
	rm -f "$WORK/verify.seg"
	local ndone=("$d"/pg_wal/archive_status/*.done)
	((${#ndone[@]} >= ready)) || die "$c: VERIFY FAILED: only ${#ndone[@]} .done files for $ready ready segments"

	if [[ $c == walvault_* ]]; then
		store=$(psql_run -F ' ' -c "SELECT requests, connections, round(request_time_avg_ms::numeric, 1), coalesce(request_latency_p50_ms, 0), coalesce(request_latency_p99_ms, 0), failed_requests + retries FROM pg_stat_walvault_store")
		read -r reqs conns reqms p50 p99 _ <<<"$store"
		[[ ${store##* } == 0 ]] || log "    NOTE: ${store##* } failed requests or retries"
		workers=$(psql_run -c "SELECT coalesce(string_agg(CASE role WHEN 'archive worker' THEN 'w' || worker_id ELSE role END || '=' || files_archived, ' ' ORDER BY worker_id), '-') FROM pg_stat_walvault_workers WHERE files_archived > 0")
		procs=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_workers WHERE files_archived > 0")
		local fails
		fails=$(psql_run -c "SELECT failed_count FROM pg_stat_walvault")
		((fails == 0)) || workers+=" (failures: $fails)"
		workers+=" ($build)"
	fi
	local fails
	fails=$(grep -c -E 'archive command failed|failed to archive|could not (archive|upload)' "$r/server.log" || true)
	((fails == 0)) || log "    WARNING: $fails archiving failures in the server log"
	pg_stop "$d"
	s3_delete "$prefix"
	rm -rf "$r"

	RUN_SECS[$key]+="$secs "
	RUN_FILES[$key]+="$ready "
	RUN_PXCONN[$key]+="$pxconn "
	RUN_PXREQ[$key]+="$pxreq "
	RUN_PGCPU[$key]+="$pgcpu "
	RUN_STCPU[$key]+="$stcpu "
	RUN_OTCPU[$key]+="$otcpu "
	RUN_BUSY[$key]+="$busy "
	[[ $conns == - ]] || { RUN_CONNS[$key]+="$conns "; RUN_REQS[$key]+="$reqs "; RUN_PROCS[$key]+="$procs "; RUN_REQMS[$key]+="$reqms "; }
	log "    $c @ $lat ms: $ready files in $secs s = $(calc "$ready / $secs" %.1f) files/s; verified $nkeys objects in the store; connections: $conns (view), $pxconn (HAProxy); requests: $reqs (view), $pxreq (HAProxy), avg $reqms ms (p50 ≤ $p50, p99 ≤ $p99); CPU s: server $pgcpu, store $stcpu, rest $otcpu (machine $busy% busy); $workers"
	DETAIL_ROWS+=("| $rep | $pos | $c | $lat | $ready | $secs | $(calc "$ready / $secs" %.1f) | $load1 | $busy | $pgcpu | $stcpu | $otcpu | $reqs | $pxreq | $conns | $pxconn | $reqms | $p50 / $p99 | $workers |")
}

# ---------------------------------------------------------------- main ----
START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
((NEED_BIG == 0)) || make_template 16 "$SEGMENTS"
((NEED_SMALL == 0)) || make_template 1 "$SMALL_SEGMENTS"

PAIRS=()
for l in "${LATENCY_LIST[@]}"; do
	for c in "${CONFIG_LIST[@]}"; do PAIRS+=("$c@$l"); done
done
ORDERS=()
for ((rep = 1; rep <= REPEAT; rep++)); do
	order=("${PAIRS[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#PAIRS[@]} - 1; i >= 0; i--)); do order+=("${PAIRS[$i]}"); done
	fi
	ORDERS+=("rep $rep: ${order[*]}")
	pos=0
	for p in "${order[@]}"; do
		pos=$((pos + 1))
		run_one "${p%@*}" "${p#*@}" "$rep" "$pos"
	done
done
ELAPSED=$(($(date +%s) - START_EPOCH))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# -------------------------------------------------------------- report ----
med() { local v; read -r -a v <<<"$1"; median "${v[@]}"; }
spread() { printf '%s\n' $1 | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }
declare -A MED_SECS MED_RATE
for p in "${PAIRS[@]}"; do
	read -r -a secs_arr <<<"${RUN_SECS[$p]}"
	read -r -a files_arr <<<"${RUN_FILES[$p]}"
	MED_SECS[$p]=$(median "${secs_arr[@]}")
	rates=()
	for ((i = 0; i < ${#secs_arr[@]}; i++)); do rates+=("$(calc "${files_arr[$i]} / ${secs_arr[$i]}")"); done
	MED_RATE[$p]=$(median "${rates[@]}")
done

OUT=$(mktemp "$WORK/report.XXXXXX")
SO_INFO_END=$(so_info)
VERDICT_FAIL=0
{
	echo "### WAL backlog drain to an object store, $DATE_STR"
	echo
	report_preamble "pg_wal on $(df --output=source "$WORK" | tail -1); the store (radosgw, memstore) and HAProxy on the same machine"
	echo "- Store: Ceph radosgw ($(radosgw --version 2>/dev/null | awk '{ print $3 }' || echo "?"); objects in memory) behind HAProxy $(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }'), both from \`scripts/rgw.sh start DIR --proxy\`; the proxy holds every request N ms (its \`delay_ms\`) before passing it on; every configuration goes through it"
	echo "- Backlogs: $([[ $NEED_BIG == 1 ]] && echo "${TEMPLATE_READY[16]} ready 16 MiB segments ($SEGMENTS generated)")$([[ $NEED_BIG == 1 && $NEED_SMALL == 1 ]] && echo "; ")$([[ $NEED_SMALL == 1 ]] && echo "${TEMPLATE_READY[1]} ready 1 MiB segments (\`initdb --wal-segsize=1\`, $SMALL_SEGMENTS generated)"), each ≥ $FILL% real WAL (INSERTs of random md5 rows); every run drains a fresh copy of its template, archiving configured by \`pg_ctl reload\`; timed until no \`.ready\` is left, polled every $POLL_MS ms; page cache dropped before each drain: $([[ $DO_DROP == 1 ]] && echo yes || echo no)"
	echo "- pg_walvault: \`archive_url = 's3://$RGW_BUCKET/PREFIX'\`, \`s3_endpoint\` = the proxy, \`s3_uri_style = 'path'\`, \`compression = '$COMPRESSION'\`, \`min_workers = max_workers\` (the pool is warm); credentials from the server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
	echo "- aws: \`$AWS_CLI\` ($("$AWS_CLI" --version 2>&1 | awk '{ print $1 }')), path-style addressing in a private AWS_CONFIG_FILE, AWS_EC2_METADATA_DISABLED=true, its default multipart settings (16 MiB files go up as 2 parts of 8 MiB)"
	echo "- Every run verified: every ready segment listed under the run's prefix, $([[ -z $SFX ]] && echo "full size, the first and last downloaded and compared with pg_wal" || echo "as FILE$SFX, the first and last restored with pg_walvault_restore -u and compared with pg_wal"); every prefix emptied after its run"
	if [[ ${S3_NODELAY:-1} == 1 ]]; then
		nd="with \`tcp_nodelay=1\` (as rgw.sh starts it, Nagle's algorithm and HAProxy's delayed ACKs add ~40 ms to small answers: see \`s3_start\` in lib.sh)"
	else
		nd="as rgw.sh starts it (S3_NODELAY=0: Nagle's algorithm on)"
	fi
	echo "- radosgw $nd. Median of 20 listings (curl, a new connection each) through the proxy $(IFS=';'; echo "${PROBES[*]}" | sed 's/;/; /g')"
	echo "- Order (alternating): $(IFS=';'; echo "${ORDERS[*]}" | sed 's/;/; /g')"
	echo "- Load average at start: $LOAD_START; at the end: $LOAD_END; highest 1-min load at a reload: $LOAD_MAX; total benchmark time ${ELAPSED} s"
	[[ $SO_INFO_END == "$SO_INFO" ]] || echo "- **WARNING: pg_walvault.so was reinstalled during the run (now: $SO_INFO_END): run again**"
	echo
	echo "| ms per request | configuration | files | median s | min–max s | files/s | MiB/s | all runs (s) |"
	echo "|---:|---|---:|---:|---|---:|---:|---|"
	for l in "${LATENCY_LIST[@]}"; do
		for c in "${CONFIG_LIST[@]}"; do
			p=$c@$l
			printf '| %s | %s | %s | %.2f | %s | %.1f | %.0f | %s |\n' "$l" "${DESC[$c]}" "$(med "${RUN_FILES[$p]}")" \
				"${MED_SECS[$p]}" "$(spread "${RUN_SECS[$p]}")" "${MED_RATE[$p]}" "$(calc "${MED_RATE[$p]} * $(seg_mb "$c")")" \
				"$(echo "${RUN_SECS[$p]}" | xargs | sed 's/ /, /g')"
		done
	done
	echo
	echo "**Goals** (ratio of median drain rates, same run):"
	echo
	echo "| goal | ms per request | required | measured | result |"
	echo "|---|---:|---:|---:|---|"
	for l in "${LATENCY_LIST[@]}"; do
		for g in "a:walvault_8:aws_cmd:10" "b:walvault_8:walvault_8_aws:3" "c:walvault_8_1m:walvault_0_1m:5"; do
			IFS=: read -r name fast slow need <<<"$g"
			[[ -n ${MED_RATE[$fast@$l]+x} && -n ${MED_RATE[$slow@$l]+x} ]] || continue
			rt=$(calc "${MED_RATE[$fast@$l]} / ${MED_RATE[$slow@$l]}" %.2f)
			if [[ $name == c && $l == 0 ]]; then
				# (c) is about hiding latency: without any, no goal
				echo "| ($name) $fast vs $slow | $l | (none without latency) | ${rt}× | – |"
				continue
			fi
			if awk -v r="$rt" -v n="$need" 'BEGIN { exit !(r >= n) }'; then res=PASS; else res=FAIL; VERDICT_FAIL=1; fi
			echo "| ($name) $fast vs $slow | $l | ≥ ${need}× | ${rt}× | **$res** |"
		done
	done
	echo
	echo "**Connections and requests** (medians over the runs): *view*: pg_stat_walvault_store (\`connections\`: requests for which libcurl had to open a connection); *HAProxy*: connections and HTTP requests its frontend accepted during the drain (its stats socket), whoever made them."
	echo
	echo "| ms per request | configuration | files | processes that archived | connections (view) | connections (HAProxy) | connections per 100 files | requests per file (view) | requests per file (HAProxy) | request avg ms (view) |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for l in "${LATENCY_LIST[@]}"; do
		for c in "${CONFIG_LIST[@]}"; do
			p=$c@$l
			f=$(med "${RUN_FILES[$p]}")
			pc=$(med "${RUN_PXCONN[$p]}")
			pr=$(calc "$(med "${RUN_PXREQ[$p]}") / $f" %.2f)
			if [[ -n ${RUN_CONNS[$p]+x} ]]; then
				cn=$(med "${RUN_CONNS[$p]}")
				printf '| %s | %s | %s | %s | %s | %s | %.1f | %.2f | %s | %s |\n' "$l" "$c" "$f" "$(med "${RUN_PROCS[$p]}")" "$cn" "$pc" \
					"$(calc "$pc * 100 / $f")" "$(calc "$(med "${RUN_REQS[$p]}") / $f")" "$pr" "$(med "${RUN_REQMS[$p]}")"
			else
				printf '| %s | %s | %s | – | – | %s | %.1f | – | %s | – |\n' "$l" "$c" "$f" "$pc" "$(calc "$pc * 100 / $f")" "$pr"
			fi
		done
	done
	echo
	echo "**Where the CPU goes** (medians over the runs, CPU seconds during the drain, from /proc): *server*: PostgreSQL's processes, with the archive commands they ran (aws CLI); *store*: radosgw, its OSD and monitor, HAProxy; *rest*: everything else on the machine (other sessions' work, this script's polling). *busy*: share of the $(nproc) CPUs in use during the drain."
	echo
	echo "| ms per request | configuration | median s | busy | server CPU s | store CPU s | rest CPU s | server CPU ms per file | store CPU ms per file |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
	for l in "${LATENCY_LIST[@]}"; do
		for c in "${CONFIG_LIST[@]}"; do
			p=$c@$l
			f=$(med "${RUN_FILES[$p]}")
			printf '| %s | %s | %.2f | %s%% | %.2f | %.2f | %.2f | %.0f | %.0f |\n' "$l" "$c" "${MED_SECS[$p]}" "$(med "${RUN_BUSY[$p]}")" \
				"$(med "${RUN_PGCPU[$p]}")" "$(med "${RUN_STCPU[$p]}")" "$(med "${RUN_OTCPU[$p]}")" \
				"$(calc "$(med "${RUN_PGCPU[$p]}") * 1000 / $f")" "$(calc "$(med "${RUN_STCPU[$p]}") * 1000 / $f")"
		done
	done
	echo
	all_runs_details "| rep | # | configuration | ms | files | s | files/s | load1 | busy % | server CPU s | store CPU s | rest CPU s | requests (view) | requests (HAProxy) | connections (view) | connections (HAProxy) | request avg ms | request p50 / p99 ms (bucket bounds) | files per process |" \
		"|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" "${DETAIL_ROWS[@]}"
} >"$OUT"

publish_report s3-drain
if [[ $STRICT == 1 && $VERDICT_FAIL == 1 ]]; then
	log "a goal was not met (STRICT=1)"
	exit 3
fi
exit 0

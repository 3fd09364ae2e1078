#!/usr/bin/env bash
#
# bench/drain.sh -- how fast a backlog of ready WAL segments is drained.
#
# For each configuration (basic_archive, archive_command with cp, with
# cp + sync, pg_walvault with 4 workers, pg_walvault with max_workers = 0)
# a fresh cluster is started with archiving NOT configured (empty directory /
# empty archive_command), a backlog of SEGMENTS ready segments is built, the
# archive directory or command is then set and the server reloaded, and the
# time from the reload until pg_wal/archive_status holds no .ready file is
# measured here, by polling.  Every run is verified: each segment that was
# ready must be in the archive directory, full size.
#
# See bench/README.md for the knobs.  Runnable as root (servers then run as
# the postgres user) or as an ordinary user.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---------------------------------------------------------------- knobs ----
record_knobs SEGMENTS REPEAT CONFIGS BACKLOG BENCH_DIR PG_BINDIR PORT SHARED_BUFFERS FILL POLL_MS DRAIN_TIMEOUT DROP_CACHES KEEP STRICT DISK_PROBE WARM_WAL ARCHIVE_LATENCY_MS

SEGMENTS=${SEGMENTS:-128}
REPEAT=${REPEAT:-5}
CONFIGS=${CONFIGS:-basic_archive cp cp_sync walvault_4 walvault_4_lz4 walvault_4_cmd walvault_0}
BACKLOG=${BACKLOG:-clone}           # clone | generate
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54600}
SHARED_BUFFERS=${SHARED_BUFFERS:-256MB}
FILL=${FILL:-85}                    # % of each segment filled with real WAL
POLL_MS=${POLL_MS:-10}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-900} # seconds, per drain
DROP_CACHES=${DROP_CACHES:-auto}    # auto (= when root) | 0
KEEP=${KEEP:-0}                     # 1: keep the work directory
STRICT=${STRICT:-0}                 # 1: exit 3 if an acceptance criterion fails
DISK_PROBE=${DISK_PROBE:-1}         # 1: measure a plain sequential copy at start and end
WARM_WAL=${WARM_WAL:-0}             # 1: read the backlog into the page cache before each drain
ARCHIVE_LATENCY_MS=${ARCHIVE_LATENCY_MS:-0} # > 0: archive on latencyfs, every fsync + this many ms

is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
is_uint "$PORT" && ((PORT > 1024 && PORT < 65536)) || die "PORT must be 1025..65535"
is_uint "$FILL" && ((FILL >= 10 && FILL <= 90)) || die "FILL must be 10..90 (percent)"
is_uint "$POLL_MS" && ((POLL_MS >= 1 && POLL_MS <= 50)) || die "POLL_MS must be 1..50"
is_uint "$DRAIN_TIMEOUT" || die "DRAIN_TIMEOUT must be an integer (seconds)"
[[ $BACKLOG == clone || $BACKLOG == generate ]] || die "BACKLOG must be clone or generate"

declare -A DESC=(
	[basic_archive]="basic_archive (contrib; fsync file + dir, serial)"
	[cp]="archive_command \`test ! -f DIR/%f && cp %p DIR/%f\` (NO fsync)"
	[cp_sync]="archive_command cp + \`sync DIR/%f DIR\` (fsync file + dir)"
	[walvault_4]="pg_walvault, max_workers=4, min_workers=4"
	[walvault_0]="pg_walvault, max_workers=0 (archiver archives serially)"
	[walvault_4_lz4]="pg_walvault, max_workers=4, min_workers=4, compression=lz4"
	[walvault_4_zstd]="pg_walvault, max_workers=4, min_workers=4, compression=zstd:1"
	[walvault_4_cmd]="pg_walvault, max_workers=4, min_workers=4, archive_command = cp_sync's command"
	[gzip_cmd]="archive_command \`gzip -1\` into DIR/%f.gz + \`sync\` (fsync file + dir)"
	[walvault_4_gzip_cmd]="pg_walvault, max_workers=4, min_workers=4, archive_command = gzip_cmd's command"
)
# suffix of the archived file name, by configuration
declare -A SUFFIX=([walvault_4_lz4]=.lz4 [walvault_4_zstd]=.zst [gzip_cmd]=.gz [walvault_4_gzip_cmd]=.gz)
read -r -a CONFIG_LIST <<<"$CONFIGS"
((${#CONFIG_LIST[@]} > 0)) || die "CONFIGS is empty"
for c in "${CONFIG_LIST[@]}"; do
	[[ -n ${DESC[$c]+x} ]] || die "unknown configuration '$c' (known: ${!DESC[*]})"
done

# ------------------------------------------------------------ who runs ----
setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config
for c in "${CONFIG_LIST[@]}"; do
	case $c in
	basic_archive) [[ -f $PKGLIBDIR/basic_archive.so ]] || die "basic_archive.so not in $PKGLIBDIR (install postgresql contrib)" ;;
	walvault_*) [[ -f $PKGLIBDIR/pg_walvault.so ]] || die "pg_walvault.so not in $PKGLIBDIR (run make install)" ;;
	esac
done
command -v perl >/dev/null || die "perl is needed for the timing loop"

# ------------------------------------------------------- work directory ----
make_work_dir drain
give_work_dir_to_pg

# ------------------------------------------- latency-bound archive storage ----
# ARCHIVE_LATENCY_MS > 0: the archive directories live on latencyfs
# (bench/latencyfs.c), a pass-through FUSE file system whose every fsync
# costs that much more, as on network storage.
ARCHIVE_PARENT=""
if ((ARCHIVE_LATENCY_MS > 0)); then
	((EUID == 0)) || die "ARCHIVE_LATENCY_MS needs root (it mounts a FUSE file system)"
	[[ -c /dev/fuse ]] || die "ARCHIVE_LATENCY_MS needs /dev/fuse"
	pkg-config --exists fuse3 || die "ARCHIVE_LATENCY_MS needs libfuse3-dev and fuse3 (apt-get install libfuse3-dev fuse3)"
	# shellcheck disable=SC2046  # pkg-config prints several words
	cc -O2 -o "$WORK/latencyfs" "$SCRIPT_DIR/latencyfs.c" $(pkg-config --cflags --libs fuse3) ||
		die "could not build bench/latencyfs.c"
	mkdir -p "$WORK/latency-back" "$WORK/latency-mnt"
	chown postgres: "$WORK/latency-back" "$WORK/latency-mnt"
	LATENCYFS_DELAY_MS=$ARCHIVE_LATENCY_MS "$WORK/latencyfs" "$WORK/latency-back" "$WORK/latency-mnt" \
		-o allow_other,default_permissions || die "could not mount latencyfs"
	bench_teardown() { umount "$WORK/latency-mnt" 2>/dev/null || umount -l "$WORK/latency-mnt"; }
	ARCHIVE_PARENT=$WORK/latency-mnt
	log "archive directories on latencyfs: every fsync of a file or directory costs $ARCHIVE_LATENCY_MS ms more"
fi

# ------------------------------------------------------------- machine ----
describe_machine
FS_SRC=$(df --output=source "$WORK" | tail -1)
FS_TYPE=$(df --output=fstype "$WORK" | tail -1)
DISK_DESC="$FS_SRC ($FS_TYPE)"
if [[ -b $FS_SRC ]]; then
	disk=$(lsblk -no PKNAME "$FS_SRC" 2>/dev/null | head -1)
	[[ -n $disk ]] || disk=$(basename "$FS_SRC")
	rota=$(cat "/sys/block/$disk/queue/rotational" 2>/dev/null || echo "?")
	model=$(lsblk -dno MODEL "/dev/$disk" 2>/dev/null | xargs || true)
	kind=""
	[[ $disk == vd* ]] && kind="virtio block device, "
	DISK_DESC="$FS_SRC ($FS_TYPE; ${kind}kernel rotational=$rota${model:+, model $model})"
fi

if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then
	DO_DROP=1
else
	DO_DROP=0
fi

SEG_MB=16
MAX_WAL_MB=$((SEGMENTS * SEG_MB * 2))
((MAX_WAL_MB >= 4096)) || MAX_WAL_MB=4096

CMDLINE="${SET_KNOBS}bench/drain.sh"

log "pg_walvault drain benchmark: $CMDLINE"
log "work directory $WORK on $DISK_DESC"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS"
log "configurations: ${CONFIG_LIST[*]}; SEGMENTS=$SEGMENTS REPEAT=$REPEAT BACKLOG=$BACKLOG"
log "page cache dropped before each timed drain: $([[ $DO_DROP == 1 ]] && echo yes || echo "no (not root or DROP_CACHES=0)")$([[ $WARM_WAL == 1 ]] && echo "; backlog then read into the page cache (WARM_WAL=1)")"
log "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
((SEGMENTS >= 100)) || log "WARNING: SEGMENTS=$SEGMENTS < 100: not a valid run for the acceptance criteria"

# ----------------------------------------------------------- helpers ----
# psql_run (lib.sh) is datadir-independent: one server at a time, on $PORT

init_cluster() { # datadir
	as_pg "$PG_BINDIR/initdb" -D "$1" -A trust -N >/dev/null ||
		die "initdb $1 failed"
	# Appended: later lines win over earlier ones.
	as_pg tee -a "$1/postgresql.conf" >/dev/null <<EOF

# ---- bench/drain.sh: common settings ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = $SHARED_BUFFERS
max_wal_size = ${MAX_WAL_MB}MB
checkpoint_timeout = 1h
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
autovacuum = off
archive_mode = on
archive_timeout = 0
archive_command = ''
log_checkpoints = on
EOF
}

start_settings() { # config datadir: archive library / command, NOT configured
	local c=$1 d=$2
	{
		echo ""
		echo "# ---- bench/drain.sh: $c, archiving not configured yet ----"
		case $c in
		basic_archive)
			echo "archive_library = 'basic_archive'"
			echo "basic_archive.archive_directory = ''" ;;
		cp | cp_sync | gzip_cmd)
			echo "archive_command = ''" ;;
		walvault_4*)
			echo "shared_preload_libraries = 'pg_walvault'"
			echo "archive_library = 'pg_walvault'"
			echo "pg_walvault.archive_directory = ''"
			echo "pg_walvault.max_workers = 4"
			echo "pg_walvault.min_workers = 4"
			case $c in
			walvault_4_lz4) echo "pg_walvault.compression = 'lz4'" ;;
			walvault_4_zstd) echo "pg_walvault.compression = 'zstd:1'" ;;
			esac ;;
		walvault_0)
			echo "shared_preload_libraries = 'pg_walvault'"
			echo "archive_library = 'pg_walvault'"
			echo "pg_walvault.archive_directory = ''"
			echo "pg_walvault.max_workers = 0"
			echo "pg_walvault.min_workers = 0" ;;
		esac
	} | as_pg tee -a "$d/postgresql.conf" >/dev/null
}

sync_command() { # archivedir: copy, then fsync the file and the directory
	echo "test ! -f $1/%f && cp %p $1/%f && sync $1/%f $1"
}

gzip_command() { # archivedir: compress into a temporary name, fsync, rename, fsync the directory
	echo "test ! -f $1/%f.gz && gzip -1 < %p > $1/%f.gz.tmp && sync $1/%f.gz.tmp && mv $1/%f.gz.tmp $1/%f.gz && sync $1"
}

archive_settings() { # config datadir archivedir: what the reload turns on
	local c=$1 d=$2 a=$3
	{
		echo ""
		echo "# ---- bench/drain.sh: $c, archiving configured ----"
		case $c in
		basic_archive) echo "basic_archive.archive_directory = '$a'" ;;
		cp) echo "archive_command = 'test ! -f $a/%f && cp %p $a/%f'" ;;
		cp_sync) echo "archive_command = '$(sync_command "$a")'" ;;
		gzip_cmd) echo "archive_command = '$(gzip_command "$a")'" ;;
		walvault_4_cmd) echo "pg_walvault.archive_command = '$(sync_command "$a")'" ;;
		walvault_4_gzip_cmd) echo "pg_walvault.archive_command = '$(gzip_command "$a")'" ;;
		walvault_*) echo "pg_walvault.archive_directory = '$a'" ;;
		esac
	} | as_pg tee -a "$d/postgresql.conf" >/dev/null
}

# Build the backlog in the running server: SEGMENTS times, insert rows of
# random md5 text until the current segment is FILL% full, then switch.
ready_note() { echo "$(count_ready "$1") ready"; }
generate_backlog() { # datadir
	local d=$1 t0 t1 lsn0 lsn1
	lsn0=$(psql_run -c "SELECT pg_current_wal_insert_lsn()")
	t0=$(date +%s.%N)
	fill_segments "$SEGMENTS" "ready_note $d"
	t1=$(date +%s.%N)
	lsn1=$(psql_run -c "SELECT pg_current_wal_insert_lsn()")
	GEN_INFO=$(psql_run -c "SELECT round(('$lsn1'::pg_lsn - '$lsn0'::pg_lsn) / 1048576.0)")
	log "    backlog generated in $(calc "$t1 - $t0" %.1f) s (${GEN_INFO} MiB of WAL positions incl. switch padding)"
}

TEMPLATE=""
make_template() {
	local t=$WORK/template
	mkdir -p "$t/data" && { ((EUID != 0)) || chown -R postgres: "$t"; }
	log "template cluster: initdb + backlog of $SEGMENTS segments"
	init_cluster "$t/data"
	pg_start "$t/data"
	generate_backlog "$t/data"
	psql_run -c "CHECKPOINT"
	pg_stop "$t/data"
	TEMPLATE_READY=$(count_ready "$t/data")
	((TEMPLATE_READY >= SEGMENTS)) ||
		die "template has $TEMPLATE_READY .ready files, expected at least $SEGMENTS"
	TEMPLATE=$t/data
	log "template ready: $TEMPLATE_READY ready segments, $(du -sm "$TEMPLATE" | cut -f1) MiB"
}


# Disk reference, not an archiver: copy the whole backlog (or as many bytes
# of zeros, without a template) into ONE file with ONE fsync at the end, from
# a cold page cache when we can drop it.  Prints MiB/s.
disk_probe() {
	local src=() t0 t1 mib
	[[ -n $TEMPLATE ]] && mapfile -t src < <(find "$TEMPLATE/pg_wal" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}' | sort)
	sync
	[[ $DO_DROP == 1 ]] && echo 3 >/proc/sys/vm/drop_caches
	t0=$(date +%s.%N)
	if ((${#src[@]} > 0)); then
		cat "${src[@]}" | dd of="$WORK/probe" bs=1M conv=fsync status=none
		mib=$((${#src[@]} * SEG_MB))
	else
		dd if=/dev/zero of="$WORK/probe" bs=1M count=$((SEGMENTS * SEG_MB)) conv=fsync status=none
		mib=$((SEGMENTS * SEG_MB))
	fi
	t1=$(date +%s.%N)
	rm -f "$WORK/probe"
	sync
	calc "$mib / ($t1 - $t0)" %.0f
}

# ------------------------------------------------------------- one run ----
declare -A RUN_SECS RUN_SEGS STORED_MIB
DETAIL_ROWS=()
LOAD_MAX=0
RUN_NO=0

run_one() { # config rep pos
	local c=$1 rep=$2 pos=$3 r d a ready secs rate mibs load1 workers="" warm="" fails
	RUN_NO=$((RUN_NO + 1))
	r=$WORK/run-$RUN_NO
	d=$r/data
	a=$r/archive
	[[ -z $ARCHIVE_PARENT ]] || a=$ARCHIVE_PARENT/archive-$RUN_NO
	mkdir -p "$r" "$a"
	((EUID != 0)) || chown -R postgres: "$r" "$a"
	chmod 700 "$r"
	log "rep $rep/$REPEAT, run $pos/${#CONFIG_LIST[@]}: $c"

	# the build this server loads (make install may replace the file later)
	local build=""
	[[ $c != walvault_* ]] || build="build $(sha256sum "$PKGLIBDIR/pg_walvault.so" | cut -c1-8)"
	if [[ $BACKLOG == clone ]]; then
		cp -a "$TEMPLATE" "$d"
		start_settings "$c" "$d"
		pg_start "$d"
	else
		mkdir -p "$d" && { ((EUID != 0)) || chown postgres: "$d"; }
		init_cluster "$d"
		start_settings "$c" "$d"
		pg_start "$d"
		generate_backlog "$d"
	fi

	if [[ $c == walvault_* ]]; then
		psql_run -c "CREATE EXTENSION IF NOT EXISTS pg_walvault"
		if [[ $c == walvault_4* ]]; then
			local i n=0
			for ((i = 0; i < 300; i++)); do
				n=$(psql_run -c "SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'")
				((n >= 4)) && break
				sleep 0.1
			done
			warm="$n idle workers before reload"
			((n >= 4)) || log "    WARNING: only $n archive workers idle before the reload"
		fi
	fi

	ready=$(count_ready "$d")
	((ready >= SEGMENTS)) || die "$c: only $ready .ready files in $d/pg_wal/archive_status, expected $SEGMENTS"
	(cd "$d/pg_wal/archive_status" && printf '%s\n' *.ready) | sed 's/\.ready$//' | sort >"$r/ready.list"
	[[ -z $(ls -A "$a") ]] || die "$c: archive directory not empty before the reload (something archived while not configured)"

	psql_run -c "CHECKPOINT"
	sync
	if [[ $DO_DROP == 1 ]]; then
		echo 3 >/proc/sys/vm/drop_caches || die "could not drop the page cache"
	fi
	if [[ $WARM_WAL == 1 ]]; then
		sed 's|^|'"$d"'/pg_wal/|' "$r/ready.list" | xargs cat >/dev/null
	fi
	load1=$(cut -d' ' -f1 /proc/loadavg)
	awk -v a="$load1" -v b="$LOAD_MAX" 'BEGIN { exit !(a > b) }' && LOAD_MAX=$load1

	archive_settings "$c" "$d" "$a"
	log "    $ready ready segments; ${warm:+$warm; }load $load1; reload and drain..."
	secs=$(time_drain "$d") || die "$c: drain failed (server log: $r/server.log)"

	# ---- verify: every segment that was ready is archived, full size ----
	# (compressed: every segment present under its suffix, the first and
	# last restored with pg_walvault_restore and compared)
	local f missing=0 badsize=0 size first last narch sfx=${SUFFIX[$c]:-} stored_mib=
	while read -r f; do
		if [[ ! -f $a/$f$sfx ]]; then
			missing=$((missing + 1))
		elif [[ -z $sfx && $f =~ ^[0-9A-F]{24}$ ]]; then
			size=$(stat -c %s "$a/$f")
			((size == SEG_MB * 1048576)) || badsize=$((badsize + 1))
		fi
	done <"$r/ready.list"
	narch=$(count_archived "$a" "$sfx")
	first=$(head -1 "$r/ready.list")
	last=$(tail -1 "$r/ready.list")
	((missing == 0 && badsize == 0)) ||
		die "$c: VERIFY FAILED: $missing of $ready ready segments missing from the archive, $badsize of wrong size"
	((narch >= ready)) || die "$c: VERIFY FAILED: archive holds $narch segments, $ready were ready"
	for f in "$first" "$last"; do
		[[ -f $d/pg_wal/$f ]] || continue
		if [[ -n $sfx ]]; then
			as_pg "$PG_BINDIR/pg_walvault_restore" -d "$a" "$f" "$WORK/verify.seg" ||
				die "$c: VERIFY FAILED: pg_walvault_restore could not restore $f"
			cmp -s "$d/pg_wal/$f" "$WORK/verify.seg" || die "$c: VERIFY FAILED: restored $f differs from pg_wal/$f"
			rm -f "$WORK/verify.seg"
		else
			cmp -s "$d/pg_wal/$f" "$a/$f" || die "$c: VERIFY FAILED: archived $f differs from pg_wal/$f"
		fi
	done
	if [[ -n $sfx ]]; then
		stored_mib=$(du -sm --apparent-size "$a" | cut -f1)
		STORED_MIB[$c]+="$stored_mib "
	fi
	local ndone=("$d"/pg_wal/archive_status/*.done)
	((${#ndone[@]} >= ready)) || die "$c: VERIFY FAILED: only ${#ndone[@]} .done files for $ready ready segments"

	if [[ $c == walvault_* ]]; then
		workers=$(psql_run -c "SELECT coalesce(string_agg(CASE role WHEN 'archive worker' THEN 'w' || worker_id ELSE role END || '=' || files_archived, ' ' ORDER BY worker_id), '-') FROM pg_stat_walvault_workers WHERE files_archived > 0 OR role = 'archive worker'")
		fails=$(psql_run -c "SELECT failed_count FROM pg_stat_walvault")
		((fails == 0)) || workers+=" (failures: $fails)"
		workers+=" ($build)"
	fi
	fails=$(grep -c -E 'archive command failed|failed to archive|could not (copy|archive)' "$r/server.log" || true)
	((fails == 0)) || log "    WARNING: $fails archiving failures in the server log"

	local s0 stop_secs
	s0=$(date +%s.%N)
	pg_stop "$d"
	stop_secs=$(calc "$(date +%s.%N) - $s0" %.1f)
	rm -rf "$r" "$a"

	rate=$(calc "$ready / $secs")
	mibs=$(calc "$ready * $SEG_MB / $secs")
	RUN_SECS[$c]+="$secs "
	RUN_SEGS[$c]+="$ready "
	log "    $c: $ready segments in $secs s = $(printf '%.1f' "$rate") segments/s, $(printf '%.0f' "$mibs") MiB/s; verified $ready/$ready in the archive${workers:+; $workers}; shutdown ${stop_secs} s"
	DETAIL_ROWS+=("| $rep | $pos | $c | $ready | $secs | $(printf '%.1f' "$rate") | $(printf '%.0f' "$mibs") | $load1 | ${workers:--} |")
}

# ---------------------------------------------------------------- main ----
START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
[[ $BACKLOG == clone ]] && make_template
PROBE_START="" PROBE_END=""
if [[ $DISK_PROBE == 1 ]]; then
	PROBE_START=$(disk_probe)
	log "disk reference: sequential copy of the backlog into one file, one fsync: $PROBE_START MiB/s"
fi

ORDERS=()
for ((rep = 1; rep <= REPEAT; rep++)); do
	order=("${CONFIG_LIST[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#CONFIG_LIST[@]} - 1; i >= 0; i--)); do order+=("${CONFIG_LIST[$i]}"); done
	fi
	ORDERS+=("rep $rep: ${order[*]}")
	pos=0
	for c in "${order[@]}"; do
		pos=$((pos + 1))
		run_one "$c" "$rep" "$pos"
	done
done
if [[ $DISK_PROBE == 1 ]]; then
	PROBE_END=$(disk_probe)
	log "disk reference at the end: $PROBE_END MiB/s"
fi
ELAPSED=$(($(date +%s) - START_EPOCH))

# -------------------------------------------------------------- report ----
declare -A MED_SECS MED_RATE
for c in "${CONFIG_LIST[@]}"; do
	read -r -a secs_arr <<<"${RUN_SECS[$c]}"
	read -r -a segs_arr <<<"${RUN_SEGS[$c]}"
	MED_SECS[$c]=$(median "${secs_arr[@]}")
	rates=()
	for ((i = 0; i < ${#secs_arr[@]}; i++)); do
		rates+=("$(calc "${segs_arr[$i]} / ${secs_arr[$i]}")")
	done
	MED_RATE[$c]=$(median "${rates[@]}")
done

ratio() { # config -> ratio of median rates to basic_archive, or empty
	[[ -n ${MED_RATE[basic_archive]+x} ]] || return 0
	calc "${MED_RATE[$1]} / ${MED_RATE[basic_archive]}"
}

OUT=$(mktemp "$WORK/report.XXXXXX")
READY_COUNTS=$(for row in "${DETAIL_ROWS[@]}"; do awk -F'|' '{ print $5 + 0 }' <<<"$row"; done | sort -un | xargs | sed 's/ /, /g')
SO_INFO_END=$(so_info)
{
	echo "### WAL backlog drain, $DATE_STR"
	echo
	report_preamble "pg_wal and archive on $DISK_DESC"
	echo "- Backlog: $READY_COUNTS ready segments of $SEG_MB MiB per run ($SEGMENTS generated, each ≥ $FILL% real WAL (INSERTs of random md5 rows) then \`pg_switch_wal()\`; one more is the segment initdb filled, when the server has marked it ready); a fresh cluster per run ($([[ $BACKLOG == clone ]] && echo "a copy of one initdb'd template holding the generated backlog, identical for every run" || echo "initdb and backlog generated per run"))"
	echo "- Server: fsync = on, shared_buffers = $SHARED_BUFFERS, max_wal_size = ${MAX_WAL_MB}MB, autovacuum = off; timed from \`pg_ctl reload\` (which sets the archive directory / command) until no \`.ready\` file is left, polled every $POLL_MS ms; CHECKPOINT + sync before each reload"
	((ARCHIVE_LATENCY_MS == 0)) || echo "- Archive directories on latencyfs (\`bench/latencyfs.c\`, FUSE pass-through to the same disk): every fsync of a file or a directory costs $ARCHIVE_LATENCY_MS ms more, as on network storage"
	[[ -z $PROBE_START ]] || echo "- Disk reference (not an archiver): $([[ -n $TEMPLATE ]] && echo "the whole backlog copied" || echo "zeros written") into one file with one fsync at the end: $PROBE_START MiB/s before the runs, $PROBE_END MiB/s after"
	echo "- Page cache dropped before each timed drain: $([[ $DO_DROP == 1 ]] && echo "yes (sync; echo 3 > /proc/sys/vm/drop_caches)" || echo "no (not root, or DROP_CACHES=0)"); $([[ $WARM_WAL == 1 ]] && echo "then the backlog was read into the page cache (WARM_WAL=1): WAL is read from memory" || { [[ $DO_DROP == 1 ]] && echo "WAL is read from disk" || echo "WAL may be read from the page cache"; })"
	echo "- Order (alternating): $(IFS=';'; echo "${ORDERS[*]}" | sed 's/;/; /g')"
	echo "- Load average at start: $LOAD_START; highest 1-min load at a reload: $LOAD_MAX; total benchmark time ${ELAPSED} s"
	[[ $SO_INFO_END == "$SO_INFO" ]] || echo "- **WARNING: pg_walvault.so was reinstalled during the run (now: $SO_INFO_END); the pg_walvault runs may mix two builds: run again**"
	((SEGMENTS >= 100)) || echo "- **SEGMENTS < 100: not a valid run for the acceptance criteria**"
	echo
	echo "| configuration | median s | segments/s | MiB/s | vs basic_archive | all runs (s) |"
	echo "|---|---:|---:|---:|---:|---|"
	for c in "${CONFIG_LIST[@]}"; do
		r=$(ratio "$c")
		printf '| %s | %.2f | %.1f | %.0f | %s | %s |\n' "${DESC[$c]}" "${MED_SECS[$c]}" "${MED_RATE[$c]}" \
			"$(calc "${MED_RATE[$c]} * $SEG_MB")" "$([[ -n $r ]] && printf '%.2f×' "$r" || echo n/a)" \
			"$(echo "${RUN_SECS[$c]}" | xargs | sed 's/ /, /g')"
	done
	echo
	echo "MiB/s = segments/s × $SEG_MB MiB (whole segment files are copied). Ratios are of the median rates."
	for c in "${CONFIG_LIST[@]}"; do
		[[ -n ${STORED_MIB[$c]+x} ]] || continue
		echo "$c stored $(echo "${STORED_MIB[$c]}" | xargs | sed 's/ /, /g') MiB in the archive per run, for $(printf "%.0f" "$(calc "${READY_COUNTS%%,*} * $SEG_MB")") MiB of WAL."
	done
	if [[ " ${CONFIG_LIST[*]} " == *" cp "* ]]; then
		echo "\`cp\` is PostgreSQL's documented example command: it does not fsync, so a file it reports archived may be lost in a crash; it is shown for reference only."
	fi
	VERDICT_FAIL=0
	if [[ -n ${MED_RATE[basic_archive]+x} ]] && [[ -n ${MED_RATE[walvault_4]+x} || -n ${MED_RATE[walvault_0]+x} || -n ${MED_RATE[walvault_4_lz4]+x} || -n ${MED_RATE[walvault_4_zstd]+x} ]]; then
		echo
		echo "**Acceptance criteria** (ratio of median drain rates, same run):"
		echo
		echo "| criterion | required | measured | result |"
		echo "|---|---:|---:|---|"
		for pair in "walvault_4:1.5" "walvault_4_lz4:1.5" "walvault_4_zstd:1.5" "walvault_0:0.95"; do
			c=${pair%%:*}
			need=${pair#*:}
			[[ -n ${MED_RATE[$c]+x} ]] || continue
			r=$(ratio "$c")
			if awk -v r="$r" -v n="$need" 'BEGIN { exit !(r >= n) }'; then res=PASS; else res=FAIL; VERDICT_FAIL=1; fi
			((SEGMENTS >= 100)) || res="$res (invalid: SEGMENTS < 100)"
			printf '| %s vs basic_archive | ≥ %.2f× | %.2f× | **%s** |\n' "${DESC[$c]}" "$need" "$r" "$res"
		done
	fi
	for pair in "cp_sync:walvault_4_cmd" "gzip_cmd:walvault_4_gzip_cmd"; do
		serial=${pair%%:*}
		parallel=${pair#*:}
		[[ -n ${MED_RATE[$serial]+x} && -n ${MED_RATE[$parallel]+x} ]] || continue
		echo
		echo "**The same command, serial and parallel**: \`$parallel\` runs $serial's archive_command in 4 workers; $(printf '%.2f' "$(calc "${MED_RATE[$parallel]} / ${MED_RATE[$serial]}")")× the rate of the server's archive_command running it (median rates, same run)."
	done
	echo
	all_runs_details "| rep | # | configuration | segments | s | segments/s | MiB/s | load1 | pg_walvault files per process |" \
		"|---:|---:|---|---:|---:|---:|---:|---:|---|" "${DETAIL_ROWS[@]}"
} >"$OUT"

publish_report drain
if [[ $STRICT == 1 && ${VERDICT_FAIL:-0} == 1 ]]; then
	log "an acceptance criterion failed (STRICT=1)"
	exit 3
fi
exit 0

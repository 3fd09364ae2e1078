#!/usr/bin/env bash
#
# bench/restore.sh -- how long a point-in-time recovery takes, by
# restore_command: cp (or the compressor's own command), pg_walvault_restore
# serial, with -j 4 and with -j 8.
#
# One primary (16 MB segments) archives with cp into a plain archive while
# SEGMENTS segments of WAL are generated after a base backup; the archive is
# then also compressed into a zstd and a gzip archive (the command-line
# tools write the same frames pg_walvault does).  Each run copies the base
# backup, sets restore_command, creates recovery.signal, starts the server
# and waits until recovery has ended; the time is the server's own "redo
# done ... elapsed" (from the first record replayed to the last), and the
# wall time from pg_ctl start until the server accepts connections is
# reported too.  Every run is checked: recovery must replay up to the last
# archived segment.
#
# Archives (ARCHIVES): plain, zstd, gzip on the local disk; latency: the
# plain archive seen through bench/latencyfs.c (FUSE), where every open costs
# LATENCY_OPEN_MS ms and every read LATENCY_READ_US us, as on a network
# store (needs root, /dev/fuse, apt-get install fuse3 libfuse3-dev).
#
# See bench/README.md for the knobs.
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

record_knobs SEGMENTS REPEAT ARCHIVES CONFIGS BENCH_DIR PG_BINDIR PORT FILL LATENCY_OPEN_MS LATENCY_READ_US DROP_CACHES KEEP RUN_TIMEOUT

SEGMENTS=${SEGMENTS:-128}
REPEAT=${REPEAT:-3}
ARCHIVES=${ARCHIVES:-plain zstd gzip latency}
CONFIGS=${CONFIGS:-floor cp serial j4 j8}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54800}
FILL=${FILL:-85}
LATENCY_OPEN_MS=${LATENCY_OPEN_MS:-20}
LATENCY_READ_US=${LATENCY_READ_US:-0}
DROP_CACHES=${DROP_CACHES:-auto}
KEEP=${KEEP:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}

is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
is_uint "$LATENCY_OPEN_MS" || die "LATENCY_OPEN_MS must be an integer"
is_uint "$LATENCY_READ_US" || die "LATENCY_READ_US must be an integer"
read -r -a ARCHIVE_LIST <<<"$ARCHIVES"
read -r -a CONFIG_LIST <<<"$CONFIGS"
for a in "${ARCHIVE_LIST[@]}"; do
	case $a in plain | zstd | gzip | latency) ;; *) die "unknown archive '$a' (plain zstd gzip latency)" ;; esac
done
for c in "${CONFIG_LIST[@]}"; do
	[[ $c == floor || $c == cp || $c == serial || $c =~ ^j[0-9]+$ ]] || die "unknown configuration '$c' (floor cp serial jN)"
done
# floor does not depend on the archive: measured once per repetition
RUN_FLOOR=0
KIND_CONFIGS=()
for c in "${CONFIG_LIST[@]}"; do
	if [[ $c == floor ]]; then RUN_FLOOR=1; else KIND_CONFIGS+=("$c"); fi
done

setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config pg_basebackup pg_walvault_restore
RESTORE_PROG=$PG_BINDIR/pg_walvault_restore
for t in zstd gzip perl; do command -v $t >/dev/null || die "$t is needed"; done

make_work_dir restore
give_work_dir_to_pg
PLAIN=$WORK/archive-plain
mkdir -p "$PLAIN" && { ((EUID != 0)) || chown postgres: "$PLAIN"; }

if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then DO_DROP=1; else DO_DROP=0; fi
describe_machine
CMDLINE="${SET_KNOBS}bench/restore.sh"
log "pg_walvault restore benchmark: $CMDLINE"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS; work directory $WORK"
((SEGMENTS >= 100)) || log "WARNING: SEGMENTS=$SEGMENTS < 100: not a valid run for the goals"

# ---------------------------------------------------------- the archive ----
pg_start() { # datadir logfile
	server_started "$1"
	as_pg "$PG_BINDIR/pg_ctl" -D "$1" -l "$2" -w -t "$RUN_TIMEOUT" start >/dev/null ||
		{ tail -n 30 "$2" >&2 || true; die "server in $1 did not start"; }
}
pg_stop() { # datadir [mode]
	as_pg "$PG_BINDIR/pg_ctl" -D "$1" -m "${2:-fast}" -w -t 300 stop >/dev/null || die "server in $1 did not stop"
	server_stopped "$1"
}

P=$WORK/primary
log "primary: initdb, base backup, $SEGMENTS segments of WAL archived with cp"
as_pg "$PG_BINDIR/initdb" -D "$P" -A trust -N >/dev/null || die "initdb failed"
as_pg tee -a "$P/postgresql.conf" >/dev/null <<EOF

# ---- bench/restore.sh ----
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_buffers = 256MB
max_wal_size = $((SEGMENTS * 32 + 1024))MB
checkpoint_timeout = 1h
autovacuum = off
archive_mode = on
archive_command = 'cp %p $PLAIN/%f'
EOF
pg_start "$P" "$WORK/primary.log"
as_pg "$PG_BINDIR/pg_basebackup" -h "$WORK" -p "$PORT" -D "$WORK/base" -X none -c fast -N ||
	die "pg_basebackup failed"
fill_segments "$SEGMENTS"
LAST_SEG=$(psql_run -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
psql_run -c "SELECT pg_switch_wal()" >/dev/null
for ((i = 0; i < 3000; i++)); do
	[[ $(psql_run -c "SELECT last_archived_wal >= '$LAST_SEG' FROM pg_stat_archiver") == t ]] && break
	sleep 0.1
done
# what pg_walvault writes into an archive it fills: without it, restore
# calls that miss a file (the end of the archive) are errors
echo "system_identifier = $(psql_run -c 'SELECT system_identifier FROM pg_control_system()')" \
	>"$PLAIN/pg_walvault.archive"
pg_stop "$P"
NSEG=$(count_archived "$PLAIN")
WAL_MIB=$((NSEG * 16))
log "archive: $NSEG segments ($WAL_MIB MiB), last $LAST_SEG"

compress_archive() { # kind
	local dir=$WORK/archive-$1
	mkdir -p "$dir"
	(cd "$PLAIN" && for f in *; do
		if [[ $f =~ ^[0-9A-F]{24}$ ]]; then echo "$f"; else cp "$f" "$dir/$f"; fi
	done) | case $1 in
		zstd) xargs -P "$(nproc)" -I{} zstd -q -3 "$PLAIN/{}" -o "$dir/{}.zst" ;;
		gzip) xargs -P "$(nproc)" -I{} sh -c "gzip -6 -n -c '$PLAIN/{}' > '$dir/{}.gz'" ;;
	esac
	((EUID != 0)) || chown -R postgres: "$dir"
	log "archive-$1: $(du -sm --apparent-size "$dir" | cut -f1) MiB"
}
for a in "${ARCHIVE_LIST[@]}"; do
	case $a in zstd | gzip) compress_archive "$a" ;; esac
done

LATENCY_MNT=""
if [[ " ${ARCHIVE_LIST[*]} " == *" latency "* ]]; then
	((EUID == 0)) || die "the latency archive needs root (it mounts a FUSE file system)"
	[[ -c /dev/fuse ]] || die "the latency archive needs /dev/fuse"
	pkg-config --exists fuse3 || die "the latency archive needs libfuse3-dev and fuse3 (apt-get install libfuse3-dev fuse3)"
	# shellcheck disable=SC2046  # pkg-config prints several words
	cc -O2 -o "$WORK/latencyfs" "$SCRIPT_DIR/latencyfs.c" $(pkg-config --cflags --libs fuse3) ||
		die "could not build bench/latencyfs.c"
	LATENCY_MNT=$WORK/latency-mnt
	mkdir -p "$LATENCY_MNT"
	LATENCYFS_OPEN_DELAY_MS=$LATENCY_OPEN_MS LATENCYFS_READ_DELAY_US=$LATENCY_READ_US \
		"$WORK/latencyfs" "$PLAIN" "$LATENCY_MNT" -o allow_other,default_permissions,ro ||
		die "could not mount latencyfs"
	bench_teardown() { umount "$LATENCY_MNT" 2>/dev/null || umount -l "$LATENCY_MNT"; }
	log "latency archive: the plain archive through latencyfs, $LATENCY_OPEN_MS ms per open, $LATENCY_READ_US us per read"
fi

archive_dir() { # kind
	case $1 in
	plain) echo "$PLAIN" ;;
	latency) echo "$LATENCY_MNT" ;;
	*) echo "$WORK/archive-$1" ;;
	esac
}

restore_command() { # kind config
	local dir
	dir=$(archive_dir "$1")
	case $2 in
	floor) echo "false" ;;
	cp)
		case $1 in
		zstd) echo "zstd -dcq $dir/%f.zst > %p" ;;
		gzip) echo "gzip -dc $dir/%f.gz > %p" ;;
		*) echo "cp $dir/%f %p" ;;
		esac ;;
	serial) echo "$RESTORE_PROG -d $dir %f %p" ;;
	j*) echo "$RESTORE_PROG -j ${2#j} -d $dir %f %p" ;;
	esac
}

# ------------------------------------------------------------- one run ----
declare -A REDO WALL
DETAIL_ROWS=()

run_one() { # kind config rep
	local kind=$1 c=$2 rep=$3 d=$WORK/run/data l=$WORK/run/server.log t0 t1 redo wall last nrest
	rm -rf "$WORK/run"
	mkdir -p "$WORK/run"
	cp -a "$WORK/base" "$d"
	# floor: every segment already in pg_wal, nothing to restore
	[[ $c != floor ]] || cp "$PLAIN"/[0-9A-F]*[0-9A-F] "$d/pg_wal/"
	((EUID != 0)) || chown -R postgres: "$WORK/run"
	as_pg tee -a "$d/postgresql.conf" >/dev/null <<EOF

# ---- bench/restore.sh: $kind, $c ----
archive_mode = off
archive_command = ''
restore_command = '$(restore_command "$kind" "$c")'
EOF
	as_pg touch "$d/recovery.signal"
	sync
	[[ $DO_DROP == 0 ]] || echo 3 >/proc/sys/vm/drop_caches
	t0=$(date +%s.%N)
	server_started "$d"
	as_pg "$PG_BINDIR/pg_ctl" -D "$d" -l "$l" start >/dev/null || die "$kind/$c: server did not start"
	for ((i = 0; ; i++)); do
		grep -q 'database system is ready to accept connections' "$l" 2>/dev/null && break
		grep -qE 'FATAL|PANIC' "$l" 2>/dev/null && { tail -20 "$l" >&2; die "$kind/$c: recovery failed"; }
		((i < RUN_TIMEOUT * 20)) || die "$kind/$c: recovery did not end in $RUN_TIMEOUT s"
		sleep 0.05
	done
	t1=$(date +%s.%N)
	wall=$(calc "$t1 - $t0" %.2f)
	redo=$(sed -n 's/.*redo done at .* elapsed: \([0-9.]*\) s.*/\1/p' "$l" | tail -1)
	[[ -n $redo ]] || die "$kind/$c: no 'redo done' line in $l"
	last=$(grep -o 'restored log file "[0-9A-F]\{24\}"' "$l" | sort | tail -1 | grep -o '[0-9A-F]\{24\}' || true)
	nrest=$(grep -c 'restored log file "[0-9A-F]\{24\}"' "$l" || true)
	if [[ $c == floor ]]; then
		# replayed from pg_wal: the end of redo must be in the last segment
		last=$(sed -n 's/.*redo done at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$l" | tail -1)
		last=$(as_pg "$PG_BINDIR/psql" -X -At -h "$WORK" -p "$PORT" -d postgres -c "SELECT pg_walfile_name('$last'::pg_lsn)" 2>/dev/null |
			sed 's/^0000000[0-9A-F]/00000001/')
	fi
	[[ $last == "$LAST_SEG" ]] || die "$kind/$c: VERIFY FAILED: recovery replayed up to $last, the archive ends with $LAST_SEG"
	pg_stop "$d" immediate
	REDO[$kind/$c]+="$redo "
	WALL[$kind/$c]+="$wall "
	log "    $kind/$c: redo $redo s, wall $wall s; $nrest segments restored up to $last"
	DETAIL_ROWS+=("| $rep | $kind | $c | $redo | $wall | $nrest |")
}

START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
for ((rep = 1; rep <= REPEAT; rep++)); do
	order=("${CONFIG_LIST[@]}")
	if ((rep % 2 == 0)); then
		order=()
		for ((i = ${#CONFIG_LIST[@]} - 1; i >= 0; i--)); do order+=("${CONFIG_LIST[$i]}"); done
	fi
	if ((RUN_FLOOR)); then
		log "rep $rep/$REPEAT: floor (every segment already in pg_wal)"
		run_one pg_wal floor "$rep"
	fi
	for kind in "${ARCHIVE_LIST[@]}"; do
		for c in "${order[@]}"; do
			[[ $c != floor ]] || continue
			log "rep $rep/$REPEAT: $kind archive, $c"
			run_one "$kind" "$c" "$rep"
		done
	done
done
ELAPSED=$(($(date +%s) - START_EPOCH))

# -------------------------------------------------------------- report ----
med() { read -r -a v <<<"$1"; median "${v[@]}"; }
OUT=$(mktemp "$WORK/report.XXXXXX")
{
	echo "### Point-in-time recovery, $DATE_STR"
	echo
	report_preamble "archive and data directory on $(df --output=source "$WORK" | tail -1)"
	echo "- WAL: $NSEG segments of 16 MiB ($WAL_MIB MiB; $SEGMENTS generated, each ≥ $FILL% INSERTs of random md5 rows), replayed from a base backup with no recovery target; every run checked to restore up to $LAST_SEG"
	echo "- Time: the server's \`redo done ... elapsed\` (first to last record replayed, restores included); wall: from \`pg_ctl start\` to \"ready to accept connections\". Page cache dropped before each run: $([[ $DO_DROP == 1 ]] && echo yes || echo no)"
	[[ -z $LATENCY_MNT ]] || echo "- latency archive: the plain archive through \`bench/latencyfs.c\`, $LATENCY_OPEN_MS ms per file opened, $LATENCY_READ_US µs per read request (250–450 kB each here, with the kernel's readahead)"
	echo "- floor: the same WAL copied into \`pg_wal\` beforehand and \`restore_command = 'false'\`: replay alone, the fastest any restore_command can make recovery"
	echo "- cp: \`cp DIR/%f %p\` (plain, latency), \`zstd -dcq DIR/%f.zst > %p\`, \`gzip -dc DIR/%f.gz > %p\`: no checks, no fsync. Total benchmark time ${ELAPSED} s"
	echo
	echo "| archive | restore_command | median redo s | MiB/s | vs serial | median wall s | all runs, redo s |"
	echo "|---|---|---:|---:|---:|---:|---|"
	if ((RUN_FLOOR)); then
		m=$(med "${REDO[pg_wal/floor]}")
		printf '| (none: all WAL in pg_wal) | floor: replay only | %.2f | %.0f | | %.2f | %s |\n' "$m" "$(calc "$WAL_MIB / $m")" \
			"$(med "${WALL[pg_wal/floor]}")" "$(echo "${REDO[pg_wal/floor]}" | xargs | sed 's/ /, /g')"
	fi
	for kind in "${ARCHIVE_LIST[@]}"; do
		s=$(med "${REDO[$kind/serial]:-}" 2>/dev/null || echo "")
		for c in "${KIND_CONFIGS[@]}"; do
			m=$(med "${REDO[$kind/$c]}")
			r="n/a"
			[[ -z $s ]] || r=$(calc "$s / $m" %.2f)×
			printf '| %s | %s | %.2f | %.0f | %s | %.2f | %s |\n' "$kind" "$c" "$m" "$(calc "$WAL_MIB / $m")" "$r" \
				"$(med "${WALL[$kind/$c]}")" "$(echo "${REDO[$kind/$c]}" | xargs | sed 's/ /, /g')"
		done
	done
	echo
	echo "**Goals** (ratio of median redo times to serial pg_walvault_restore, same run):"
	echo
	echo "| archive | configuration | goal | measured | result |"
	echo "|---|---|---:|---:|---|"
	for kind in "${ARCHIVE_LIST[@]}"; do
		[[ -n ${REDO[$kind/serial]+x} ]] || continue
		s=$(med "${REDO[$kind/serial]}")
		for c in j4 j8; do
			[[ -n ${REDO[$kind/$c]+x} ]] || continue
			case $kind in plain) need=1.00 ;; zstd | gzip) need=1.50 ;; latency) need=$([[ $c == j8 ]] && echo 4.00 || echo 0) ;; esac
			[[ $need != 0 ]] || continue
			r=$(calc "$s / $(med "${REDO[$kind/$c]}")" %.2f)
			if awk -v r="$r" -v n="$need" 'BEGIN { exit !(r >= n) }'; then res=PASS; else res=FAIL; fi
			echo "| $kind | $c | ≥ ${need}× | ${r}× | **$res** |"
		done
	done
	echo
	all_runs_details "| rep | archive | restore_command | redo s | wall s | segments restored |" \
		"|---:|---|---|---:|---:|---:|" "${DETAIL_ROWS[@]}"
} >"$OUT"
publish_report restore

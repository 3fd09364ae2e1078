#!/usr/bin/env bash
#
# bench/verify.sh -- how fast pg_walvault_restore --verify reads an archive,
# against reading the same files with cat.
#
# One primary (16 MB segments) archives SEGMENTS segments of real WAL with
# cp into a plain archive (fill_segments: each segment FILL% full of
# INSERTs, then switched), after a base backup, so that the archive also
# holds a .backup file; the archive is then also compressed into a zstd
# archive with the command-line tool (the frames pg_walvault writes).  For
# each archive and each run:
#
#   cat      cat of every file to /dev/null (no checks: the floor of reading)
#   jN       pg_walvault_restore --verify -j N -d ARCHIVE -D PRIMARY: every
#            file decompressed and checked as a restore would (page headers,
#            system identifier, record CRCs where wal_check.c checks them),
#            N at a time
#
# each with a cold page cache (echo 3 > /proc/sys/vm/drop_caches before the
# run, as root) and warm (the same run again right after).  Every verify
# must say status=clean with every segment counted, or the benchmark stops.
# Rates are MiB of stored files per second (for zstd, also of WAL); CPU is
# the user + system time of the reader and its workers (cutime and cstime of
# this shell), which other load on the machine changes less than the wall
# time; the load average before each run is reported with it.
#
# Knobs (environment): SEGMENTS (1000), JOBS ("1 4"), REPEAT (3),
# ARCHIVES ("plain zstd"), FILL (85), PG_BINDIR, PORT (54810), BENCH_DIR,
# DROP_CACHES (auto: when root), KEEP (0), REUSE (the work directory of an
# earlier run kept with KEEP=1: its archives are measured again, nothing is
# generated; implies KEEP=1).
#
set -euo pipefail
shopt -s nullglob
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

record_knobs SEGMENTS JOBS REPEAT ARCHIVES FILL BENCH_DIR PG_BINDIR PORT DROP_CACHES KEEP REUSE

SEGMENTS=${SEGMENTS:-1000}
JOBS=${JOBS:-1 4}
REPEAT=${REPEAT:-3}
ARCHIVES=${ARCHIVES:-plain zstd}
FILL=${FILL:-85}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-54810}
DROP_CACHES=${DROP_CACHES:-auto}
KEEP=${KEEP:-0}
REUSE=${REUSE:-}
[[ -z $REUSE ]] || KEEP=1

is_uint "$SEGMENTS" && ((SEGMENTS >= 1)) || die "SEGMENTS must be a positive integer"
is_uint "$REPEAT" && ((REPEAT >= 1)) || die "REPEAT must be a positive integer"
read -r -a JOB_LIST <<<"$JOBS"
read -r -a ARCHIVE_LIST <<<"$ARCHIVES"
for j in "${JOB_LIST[@]}"; do is_uint "$j" && ((j >= 1 && j <= 64)) || die "JOBS: $j is not from 1 to 64"; done
for a in "${ARCHIVE_LIST[@]}"; do
	case $a in plain | zstd) ;; *) die "unknown archive '$a' (plain zstd)" ;; esac
done

setup_as_pg servers
check_pg_bindir initdb pg_ctl psql postgres pg_config pg_basebackup pg_walvault_restore
RESTORE_PROG=$PG_BINDIR/pg_walvault_restore
command -v zstd >/dev/null || die "zstd is needed"

if [[ -n $REUSE ]]; then
	[[ -d $REUSE/archive-plain && -d $REUSE/primary ]] || die "REUSE: $REUSE is not the work directory of an earlier run"
	WORK=$REUSE
	PARENT=$(dirname "$WORK")
	trap cleanup EXIT
else
	make_work_dir verify
	give_work_dir_to_pg
fi
PLAIN=$WORK/archive-plain
mkdir -p "$PLAIN" && { ((EUID != 0)) || chown postgres: "$PLAIN"; }

if [[ $DROP_CACHES == auto ]] && ((EUID == 0)) && [[ -w /proc/sys/vm/drop_caches ]]; then DO_DROP=1; else DO_DROP=0; fi
((DO_DROP)) || log "WARNING: the page cache cannot be dropped (not root): cold runs are warm"
describe_machine
CMDLINE="${SET_KNOBS}bench/verify.sh"
log "pg_walvault verify benchmark: $CMDLINE"
log "$(nproc) CPUs, ${MEM_GIB} GiB RAM, $PG_VERSION, running as $RUN_AS; work directory $WORK"

# ---------------------------------------------------------- the archive ----
P=$WORK/primary
if [[ -z $REUSE ]]; then
	log "primary: initdb, base backup, $SEGMENTS segments of WAL archived with cp"
	as_pg "$PG_BINDIR/initdb" -D "$P" -A trust -N >/dev/null || die "initdb failed"
	as_pg tee -a "$P/postgresql.conf" >/dev/null <<-EOF

	# ---- bench/verify.sh ----
	port = $PORT
	listen_addresses = ''
	unix_socket_directories = '$WORK'
	shared_buffers = 256MB
	max_wal_size = 4GB
	checkpoint_timeout = 1h
	autovacuum = off
	archive_mode = on
	archive_command = 'cp %p $PLAIN/%f'
	EOF
	pg_start "$P"
	as_pg "$PG_BINDIR/pg_basebackup" -h "$WORK" -p "$PORT" -D "$WORK/base" -X none -c fast -N ||
		die "pg_basebackup failed"
	fill_segments "$SEGMENTS"
	LAST_SEG=$(psql_run -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
	psql_run -c "SELECT pg_switch_wal()" >/dev/null
	for ((i = 0; i < 6000; i++)); do
		[[ $(psql_run -c "SELECT last_archived_wal >= '$LAST_SEG' FROM pg_stat_archiver") == t ]] && break
		sleep 0.1
	done
	# the marker pg_walvault writes into an archive it fills (cp does not):
	# without it the archive is not clean
	echo "system_identifier = $(psql_run -c 'SELECT system_identifier FROM pg_control_system()')" \
		>"$PLAIN/pg_walvault.archive"
	pg_stop "$P"
	NSEG=$(count_archived "$PLAIN")
	log "archive: $NSEG segments, last $LAST_SEG"

	if [[ " ${ARCHIVE_LIST[*]} " == *" zstd "* ]]; then
		Z=$WORK/archive-zstd
		mkdir -p "$Z"
		(cd "$PLAIN" && for f in *; do
			if [[ $f =~ ^[0-9A-F]{24}$ ]]; then echo "$f"; else cp "$f" "$Z/$f"; fi
		done) | xargs -P "$(nproc)" -I{} zstd -q -3 "$PLAIN/{}" -o "$Z/{}.zst"
		((EUID != 0)) || chown -R postgres: "$Z"
	fi
else
	NSEG=$(count_archived "$PLAIN")
	LAST_SEG=$(cd "$PLAIN" && find . -name '[0-9A-F]*' -printf '%f\n' | grep -E '^[0-9A-F]{24}$' | sort | tail -1)
	log "reusing $WORK: $NSEG segments, last $LAST_SEG"
fi

archive_dir() { if [[ $1 == plain ]]; then echo "$PLAIN"; else echo "$WORK/archive-$1"; fi; }
mib_of() { du -sm --apparent-size "$1" | cut -f1; }
WAL_MIB=$(mib_of "$PLAIN")

# ------------------------------------------------------------- one run ----
declare -A SECS CPU
DETAIL_ROWS=()

run_one() { # archive config cache rep
	local kind=$1 c=$2 cache=$3 rep=$4 dir t0 t1 s out summary ticks0 ticks1 cpu load
	dir=$(archive_dir "$kind")
	if [[ $cache == cold ]]; then
		sync
		((DO_DROP == 0)) || echo 3 >/proc/sys/vm/drop_caches
	fi
	load=$(cut -d' ' -f1 /proc/loadavg)
	ticks0=$(proc_ticks $$)
	t0=$(date +%s.%N)
	if [[ $c == cat ]]; then
		cat "$dir"/* >/dev/null
	else
		out=$(as_pg "$RESTORE_PROG" --verify -j "${c#j}" -d "$dir" -D "$P") ||
			die "$kind/$c: verify exited with $?: $(tail -3 <<<"$out")"
	fi
	t1=$(date +%s.%N)
	ticks1=$(proc_ticks $$)
	s=$(calc "$t1 - $t0" %.2f)
	cpu=$(calc "($ticks1 - $ticks0) / $CLK_TCK" %.2f)
	if [[ $c != cat ]]; then
		summary=$(tail -1 <<<"$out")
		[[ $summary == *"status=clean"* && $summary == *" segments=$NSEG "* ]] ||
			die "$kind/$c: VERIFY FAILED: $summary"
	fi
	SECS[$kind/$c/$cache]+="$s "
	CPU[$kind/$c/$cache]+="$cpu "
	log "    $kind/$c/$cache: $s s, CPU $cpu s, load average before $load"
	DETAIL_ROWS+=("| $rep | $kind | $c | $cache | $s | $cpu | $load |")
}

START_EPOCH=$(date +%s)
DATE_STR=$(date '+%Y-%m-%d %H:%M %Z')
CONFIGS=(cat)
for j in "${JOB_LIST[@]}"; do CONFIGS+=("j$j"); done
for ((rep = 1; rep <= REPEAT; rep++)); do
	for kind in "${ARCHIVE_LIST[@]}"; do
		for c in "${CONFIGS[@]}"; do
			log "rep $rep/$REPEAT: $kind archive, $c"
			run_one "$kind" "$c" cold "$rep"
			run_one "$kind" "$c" warm "$rep"
		done
	done
done
ELAPSED=$(($(date +%s) - START_EPOCH))

# -------------------------------------------------------------- report ----
med() { read -r -a v <<<"$1"; median "${v[@]}"; }
OUT=$(mktemp "$WORK/report.XXXXXX")
{
	echo "### Verify, $DATE_STR"
	echo
	report_preamble "archive on $(df --output=source "$WORK" | tail -1)"
	echo "- Archive: $NSEG segments of 16 MiB ($WAL_MIB MiB of WAL; $SEGMENTS generated, each ≥ $FILL% INSERTs of random md5 rows) and a .backup file; zstd: the same compressed with \`zstd -3\`"
	echo "- cat: \`cat DIR/* > /dev/null\`; jN: \`pg_walvault_restore --verify -j N -d DIR -D DATADIR\`, every run checked to report status=clean with $NSEG segments. Cold: \`echo 3 > /proc/sys/vm/drop_caches\` first ($([[ $DO_DROP == 1 ]] && echo done || echo "not possible: cold = warm")); warm: the same run again at once. Total benchmark time ${ELAPSED} s"
	echo
	echo "| archive | reader | cache | median s | stored MiB/s | WAL MiB/s | vs cat | median CPU s | WAL MiB per CPU s |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
	for kind in "${ARCHIVE_LIST[@]}"; do
		stored=$(mib_of "$(archive_dir "$kind")")
		for cache in cold warm; do
			catm=$(med "${SECS[$kind/cat/$cache]}")
			for c in "${CONFIGS[@]}"; do
				m=$(med "${SECS[$kind/$c/$cache]}")
				r=$(calc "$catm / $m" %.2f)
				cm=$(med "${CPU[$kind/$c/$cache]}")
				printf '| %s | %s | %s | %.2f | %.0f | %.0f | %s× | %.2f | %.0f |\n' "$kind" "$c" "$cache" "$m" \
					"$(calc "$stored / $m")" "$(calc "$WAL_MIB / $m")" "$r" "$cm" \
					"$(calc "$WAL_MIB / ($cm > 0 ? $cm : 0.01)")"
			done
		done
	done
	echo
	echo "\"vs cat\" is cat's time over the reader's: 1.00× reads as fast as cat, 0.50× takes twice as long."
	echo
	all_runs_details "| rep | archive | reader | cache | s | CPU s | load average before |" "|---:|---|---|---|---:|---:|---:|" "${DETAIL_ROWS[@]}"
} >"$OUT"
publish_report verify

# shellcheck shell=bash
#
# bench/lib.sh -- helpers shared by the scripts in bench/ (drain.sh, s3_drain.sh,
# overhead.sh, views.sh, history_reader.sh, restore.sh, s3_restore.sh,
# soak.sh).  Sourced, not run:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# On sourcing it sets SCRIPT_DIR (bench/), REPO_DIR, RESULTS_DIR
# (bench/results), STAMP (the report's time stamp) and RUNNING (data
# directories of the servers started and not yet stopped), and defines:
#
#   record_knobs KNOB...      SET_KNOBS: the knobs set in the environment, as
#                             shell words, for the report's command line
#   log, die, is_uint, calc, median
#   setup_as_pg WHO           as_pg (runs a command as postgres when root) and
#                             RUN_AS; WHO ("server" / "servers") names what
#                             runs as postgres
#   check_pg_bindir PROG...   every PROG in PG_BINDIR; sets PKGLIBDIR, PG_VERSION
#   make_work_dir NAME [NOTE] PARENT and WORK ($PARENT/walvault-NAME.XXXXXX),
#                             the EXIT/INT/TERM traps (cleanup); NOTE follows
#                             "work directory kept: $WORK" when KEEP=1
#   cleanup                   the EXIT trap: stops the servers in RUNNING,
#                             calls bench_teardown if the script defines it
#                             (immediate), removes WORK unless KEEP=1
#   give_work_dir_to_pg       when root, WORK belongs to postgres; mode 700
#   server_started DATADIR, server_stopped DATADIR   maintain RUNNING
#   describe_machine          MEM_GIB, CPU_MODEL, SO_INFO, GIT_INFO
#   so_info                   the installed pg_walvault.so: path, build time, hash
#   psql_db DB ARGS..., psql_run ARGS...   psql on the socket in WORK, port PORT
#   pg_start DATADIR, pg_stop DATADIR   the server of DATADIR (log beside it)
#   count_ready DATADIR       .ready files in DATADIR/pg_wal/archive_status
#   count_archived DIR        WAL segment files in DIR
#   fill_segments COUNT [NOTE] COUNT segments of real WAL (FILL% each), closed
#   time_drain DATADIR        reload, then seconds until no .ready is left
#                             (POLL_MS, DRAIN_TIMEOUT set by the script)
#   log_problems LOGFILE      ERROR/FATAL/PANIC/WARNING lines of a server log,
#                             without the shutdown FATALs of background workers
#   log_problems_top LOGFILE  the 5 most frequent of them, counted, indented
#   first_problem LOGFILE     the first, for Markdown (200 characters at most)
#   shutdown_fatals LOGFILE   count of those shutdown FATALs
#   report_preamble [TEXT]    the report's Command, Machine (TEXT appended)
#                             and PostgreSQL / pg_walvault lines
#   all_runs_details HEADER SEP ROW...   the folded "All runs" table
#   publish_report NAME       copies $OUT to RESULTS_DIR/NAME-STAMP.md (or
#                             PARENT when RESULTS_DIR is not writable), prints it
#
# Object store (s3_drain.sh, s3_restore.sh):
#   s3_start                  Ceph radosgw + HAProxy (scripts/rgw.sh --proxy)
#                             in WORK/rgw, stopped by cleanup; exports the
#                             keys and a private AWS CLI config (path style)
#                             (radosgw restarted with tcp_nodelay unless
#                             S3_NODELAY=0: see there)
#   s3_delay MS               the proxy holds every request MS ms from now on
#   s3_probe                  "PROXY RGW": median ms of a listing through the
#                             proxy and straight to radosgw
#   s3_request METHOD PATH [CURL ARGS]   a SigV4-signed request straight to
#                             radosgw (curl, no proxy, no latency)
#   s3_keys PREFIX            "key<TAB>size" of every object under PREFIX/
#   s3_get KEY FILE           downloads one object
#   s3_delete PREFIX          removes every object under PREFIX/
#   proxy_counters            "CONNECTIONS REQUESTS" HAProxy's frontend has
#                             accepted (its stats socket, added by s3_start)
#   S3_PIDS                   the store's processes (radosgw, OSD, monitor, HAProxy)
#
# CPU accounting (from /proc, in clock ticks; CLK_TCK a second):
#   proc_ticks PID...         utime + stime + cutime + cstime of the PIDs
#                             (their children waited for included)
#   machine_ticks             "BUSY TOTAL" ticks of all CPUs since boot
#
# The calling script sets PG_BINDIR, PORT, KEEP, CMDLINE and OUT itself.
#
# shellcheck disable=SC2153,SC2154  # PG_BINDIR, PORT, KEEP, CMDLINE, OUT: set by the script

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
RESULTS_DIR=$SCRIPT_DIR/results
STAMP=$(date +%Y%m%d-%H%M%S)
RUNNING=()      # data directories of servers we started and have not stopped

record_knobs() { # knob names
	local k
	SET_KNOBS=""
	for k in "$@"; do
		if [[ -n ${!k+x} ]]; then SET_KNOBS+="$k=$(printf %q "${!k}") "; fi
	done
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
calc() { awk "BEGIN { printf \"${2:-%.6f}\", $1 }"; }
median() { # numbers...
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ------------------------------------------------------------ who runs ----
setup_as_pg() { # "server" | "servers"
	if ((EUID == 0)); then
		id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user"
		as_pg() { runuser -u postgres -- "$@"; }
		RUN_AS="root ($1 as postgres)"
	else
		as_pg() { "$@"; }
		RUN_AS=$(id -un)
	fi
}

check_pg_bindir() { # programs
	local b
	for b in "$@"; do
		[[ -x $PG_BINDIR/$b ]] || die "$PG_BINDIR/$b not found (set PG_BINDIR)"
	done
	PKGLIBDIR=$("$PG_BINDIR/pg_config" --pkglibdir)
	PG_VERSION=$("$PG_BINDIR/postgres" --version)
}

# ------------------------------------------------------- work directory ----
make_work_dir() { # name [note when kept]
	PARENT=${BENCH_DIR:-${TMPDIR:-/tmp}}
	mkdir -p "$PARENT"
	WORK=$(mktemp -d "$PARENT/walvault-$1.XXXXXX")
	[[ $WORK =~ ^[A-Za-z0-9._/-]+$ ]] || { rmdir "$WORK"; die "work directory '$WORK' has characters unsafe in postgresql.conf; set BENCH_DIR"; }
	KEPT_NOTE=${2:-}
	trap cleanup EXIT
	trap 'echo "interrupted" >&2; exit 130' INT
	trap 'echo "terminated" >&2; exit 143' TERM
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local rc=$? d
	trap - EXIT INT TERM
	for d in "${RUNNING[@]}"; do
		[[ -n $d && -f $d/postmaster.pid ]] &&
			as_pg "$PG_BINDIR/pg_ctl" -D "$d" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
	done
	# a script's own teardown (unmounting, say) comes before the removal
	! declare -F bench_teardown >/dev/null || bench_teardown || true
	[[ -z ${S3_DIR:-} ]] || "$REPO_DIR/scripts/rgw.sh" stop "$S3_DIR" >/dev/null 2>&1 || true
	if [[ $KEEP == 1 ]]; then
		echo "work directory kept: $WORK$KEPT_NOTE"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}

give_work_dir_to_pg() {
	if ((EUID == 0)); then
		chown -R postgres: "$WORK"
		as_pg test -w "$WORK" || die "user postgres cannot write $WORK (is every parent directory searchable? set BENCH_DIR)"
	fi
	chmod 700 "$WORK"
}

server_started() { # datadir
	RUNNING+=("$1")
}

server_stopped() { # datadir
	local keep=() d
	for d in "${RUNNING[@]}"; do [[ $d == "$1" ]] || keep+=("$d"); done
	RUNNING=("${keep[@]}")
}

# ------------------------------------------------------------- machine ----
so_info() {
	if [[ -f $PKGLIBDIR/pg_walvault.so ]]; then
		echo "$PKGLIBDIR/pg_walvault.so built $(date -r "$PKGLIBDIR/pg_walvault.so" '+%Y-%m-%d %H:%M'), sha256 $(sha256sum "$PKGLIBDIR/pg_walvault.so" | cut -c1-12)"
	else
		echo "not installed"
	fi
}

describe_machine() {
	MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
	CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || true)
	SO_INFO=$(so_info)
	GIT_INFO=$(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo "?")
	if [[ $GIT_INFO != "?" ]] && [[ -n $(cd "$REPO_DIR" && git --no-optional-locks status --porcelain -- src 2>/dev/null) ]]; then
		GIT_INFO+=" (src/ has uncommitted changes)"
	fi
}

# ------------------------------------------------------------- servers ----
psql_db() { # db, psql args...
	local db=$1
	shift
	as_pg "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d "$db" "$@"
}
psql_run() { psql_db postgres "$@"; }

# pg_start DATADIR, pg_stop DATADIR: start (log in DATADIR/../server.log)
# and stop (fast) the server of DATADIR, kept in RUNNING
pg_start() {
	server_started "$1"
	as_pg "$PG_BINDIR/pg_ctl" -D "$1" -l "$1/../server.log" -w -t 300 start >/dev/null ||
		{ tail -n 30 "$1/../server.log" >&2 || true; die "server in $1 did not start"; }
}

pg_stop() {
	as_pg "$PG_BINDIR/pg_ctl" -D "$1" -m fast -w -t 300 stop >/dev/null ||
		die "server in $1 did not stop"
	server_stopped "$1"
}

count_ready() { # datadir
	local f=("$1"/pg_wal/archive_status/*.ready)
	echo "${#f[@]}"
}

count_archived() { # dir [suffix]: WAL segments in the archive directory
	local sfx=${2:-}
	find "$1" -maxdepth 1 -type f -regextype posix-extended -regex ".*/[0-9A-F]{24}${sfx//./\\.}" | wc -l
}

# time_drain DATADIR: note the time, reload the server (which sets where
# files go), poll archive_status every POLL_MS ms until no .ready file is
# left; prints the elapsed seconds.  Fails after DRAIN_TIMEOUT seconds.  The
# timing runs in one perl process, so that starting programs does not count.
time_drain() {
	local d=$1 as_pg_cmd=()
	((EUID != 0)) || as_pg_cmd=(runuser -u postgres --)
	perl -MTime::HiRes=time,sleep -e '
		my ($status, $poll_ms, $timeout, @reload) = @ARGV;
		my $t0 = time;
		system(@reload) == 0 or die "reload failed\n";
		my $n;
		while (1) {
			opendir(my $dh, $status) or die "$status: $!\n";
			$n = grep { /\.ready$/ } readdir($dh);
			closedir($dh);
			my $t = time;
			if ($n == 0) { printf "%.3f\n", $t - $t0; exit 0; }
			if ($t - $t0 > $timeout) {
				print STDERR "drain timed out after ${timeout}s with $n .ready files left\n";
				exit 1;
			}
			sleep($poll_ms / 1000);
		}' "$d/pg_wal/archive_status" "$POLL_MS" "$DRAIN_TIMEOUT" \
		"${as_pg_cmd[@]}" "$PG_BINDIR/pg_ctl" -D "$d" -s reload
}

# ------------------------------------------------------------- WAL ----
# fill_segments COUNT [NOTE]: in the running server, COUNT times, insert
# rows of random md5 text into bench_wal until the current segment is FILL%
# full, then pg_switch_wal(): COUNT segments of real WAL, each closed.
# Progress is logged every 32 segments; NOTE, a command, adds to that line.
fill_segments() {
	local total=$1 note=${2:-} done_segs=0 chunk
	psql_run -c "CREATE TABLE IF NOT EXISTS bench_wal (id bigint, payload text)"
	while ((done_segs < total)); do
		chunk=$((total - done_segs))
		((chunk <= 32)) || chunk=32
		psql_run <<EOF
DO \$\$
DECLARE
	segsize bigint := (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size');
	target  bigint := segsize * $FILL / 100;
	seg     text;
	n       bigint := 0;
BEGIN
	FOR i IN 1..$chunk LOOP
		TRUNCATE bench_wal;
		seg := pg_walfile_name(pg_current_wal_insert_lsn());
		LOOP
			INSERT INTO bench_wal
				SELECT g, md5(random()::text) FROM generate_series(n + 1, n + 10000) g;
			n := n + 10000;
			EXIT WHEN pg_walfile_name(pg_current_wal_insert_lsn()) <> seg
				OR (pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % segsize >= target;
		END LOOP;
		PERFORM pg_switch_wal();
		COMMIT;
	END LOOP;
END
\$\$;
EOF

		done_segs=$((done_segs + chunk))
		log "    generated $done_segs/$total segments${note:+ ($($note))}"
	done
}

SHUTDOWN_FATAL_RE='FATAL: +terminating background worker .* due to administrator command'

log_problems() { # logfile: problem lines, without the shutdown FATALs of background workers
	grep -E '(ERROR|FATAL|PANIC|WARNING): ' "$1" |
		grep -vE "$SHUTDOWN_FATAL_RE" || true
}
log_problems_top() { # logfile
	log_problems "$1" | sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //' | sort | uniq -c | sort -rn | head -5 | sed 's/^/        /'
}
first_problem() { # logfile
	log_problems "$1" | head -1 | sed 's/`/'"'"'/g' | cut -c1-200
}
shutdown_fatals() { # logfile
	grep -cE "$SHUTDOWN_FATAL_RE" "$1" || true
}

# -------------------------------------------------------------- report ----
report_preamble() { # [text appended to the Machine line]
	echo "- Command (from the repository root, as $RUN_AS): \`$CMDLINE\`"
	echo "- Machine: $(nproc) CPUs${CPU_MODEL:+ ($CPU_MODEL)}, ${MEM_GIB} GiB RAM, kernel $(uname -r)${1:+; $1}"
	echo "- $PG_VERSION; pg_walvault: $SO_INFO; repository at $GIT_INFO"
}

all_runs_details() { # header separator rows...
	echo "<details><summary>All runs</summary>"
	echo
	echo "$1"
	echo "$2"
	shift 2
	printf '%s\n' "$@"
	echo
	echo "</details>"
}

publish_report() { # name
	if ! { mkdir -p "$RESULTS_DIR" 2>/dev/null && [[ -w $RESULTS_DIR ]]; }; then
		log "WARNING: cannot write $RESULTS_DIR; writing the results to $PARENT instead"
		RESULTS_DIR=$PARENT
	fi
	RESULT_FILE=$RESULTS_DIR/$1-$STAMP.md
	cp "$OUT" "$RESULT_FILE"
	echo
	cat "$OUT"
	echo
	log "results written to $RESULT_FILE"
}

# ------------------------------------------------------- object store ----
# s3_start: a throwaway S3 store, Ceph's radosgw with HAProxy in front
# (scripts/rgw.sh start WORK/rgw --proxy; its watchdog stops it should this
# script die without its EXIT trap).  Sets RGW_ENDPOINT, PROXY_ENDPOINT,
# RGW_BUCKET, RGW_REGION, S3_DIR; exports AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY (the servers started later inherit them),
# AWS_EC2_METADATA_DISABLED=true, the region and AWS_CONFIG_FILE, a private
# config that makes the aws CLI address the bucket path-style.
S3_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_start() {
	local t0=$SECONDS
	command -v curl >/dev/null || die "curl is needed"
	S3_DIR=$WORK/rgw
	"$REPO_DIR/scripts/rgw.sh" start "$S3_DIR" --proxy --owner $$ >"$WORK/rgw-start.log" 2>&1 ||
		{ cat "$WORK/rgw-start.log" >&2; die "scripts/rgw.sh start failed"; }
	# shellcheck disable=SC1091  # written by rgw.sh
	. "$S3_DIR/env"
	[[ -n $PROXY_ENDPOINT ]] || die "scripts/rgw.sh started no proxy"
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	export AWS_EC2_METADATA_DISABLED=true AWS_REGION=$RGW_REGION AWS_DEFAULT_REGION=$RGW_REGION
	mkdir -p "$WORK/aws"
	printf '[default]\nregion = %s\ns3 =\n    addressing_style = path\n' "$RGW_REGION" >"$WORK/aws/config"
	export AWS_CONFIG_FILE=$WORK/aws/config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws/credentials
	((EUID != 0)) || chown -R postgres: "$WORK/aws"
	# radosgw's default leaves Nagle's algorithm on: a small answer (a
	# listing) sent in two writes waits for the ACK of the first, which
	# HAProxy, on the connection to radosgw it reuses, delays by some 40 ms.
	# Measured here: a ListObjectsV2 through the proxy at 0 ms took 47 ms,
	# 4 ms straight to radosgw.  A real store answers at once; so does
	# radosgw with tcp_nodelay (S3_NODELAY=0 keeps rgw.sh's setting).
	if [[ ${S3_NODELAY:-1} == 1 ]]; then
		sed -i 's/^\([[:space:]]*rgw frontends = beast .*\)$/\1 tcp_nodelay=1/' "$CEPH_CONF"
		grep -q 'tcp_nodelay=1' "$CEPH_CONF" || die "could not set tcp_nodelay in $CEPH_CONF"
		{ "$REPO_DIR/scripts/rgw.sh" stop-rgw "$S3_DIR" && "$REPO_DIR/scripts/rgw.sh" start-rgw "$S3_DIR"; } >>"$WORK/rgw-start.log" 2>&1 ||
			{ cat "$WORK/rgw-start.log" >&2; die "could not restart radosgw with tcp_nodelay"; }
	fi
	# HAProxy's own counters (proxy_counters) need its stats socket
	local pid
	sed -i "s|^global\$|global\n\tstats socket $S3_DIR/proxy/stats.sock mode 600 level user|" "$S3_DIR/proxy/haproxy.cfg"
	pid=$("$REPO_DIR/scripts/rgw.sh" pids "$S3_DIR" haproxy) || die "no HAProxy running"
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
	haproxy -D -f "$S3_DIR/proxy/haproxy.cfg" -p "$S3_DIR/proxy/haproxy.pid" >>"$S3_DIR/log/haproxy.log" 2>&1 ||
		die "could not restart HAProxy with a stats socket"
	for ((i = 0; i < 50; i++)); do [[ -S $S3_DIR/proxy/stats.sock ]] && break; sleep 0.1; done
	proxy_counters >/dev/null || die "HAProxy's stats socket does not answer"
	mapfile -t S3_PIDS < <("$REPO_DIR/scripts/rgw.sh" pids "$S3_DIR" all | awk '{ print $2 }')
	((${#S3_PIDS[@]} >= 4)) || die "could not find the store's processes (scripts/rgw.sh pids)"
	log "object store: radosgw $RGW_ENDPOINT, HAProxy $PROXY_ENDPOINT, bucket $RGW_BUCKET (ready in $((SECONDS - t0)) s)"
}

# s3_probe: median time in ms of 20 ListObjectsV2 requests (a new
# connection each, curl) through the proxy and straight to radosgw, at the
# proxy's current delay: what a request costs beyond that delay
s3_probe() {
	local ep n out=""
	for ep in "$PROXY_ENDPOINT" "$RGW_ENDPOINT"; do
		n=$(for ((i = 0; i < 20; i++)); do
			curl -sS -f --max-time 30 --aws-sigv4 "aws:amz:$RGW_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
				-H "x-amz-content-sha256: $S3_EMPTY_SHA256" -o /dev/null -w '%{time_total}\n' \
				"$ep/$RGW_BUCKET?list-type=2&prefix=probe%2F" || echo 999
		done | sort -g | awk '{ a[NR] = $1 } END { printf "%.1f", 1000 * (a[10] + a[11]) / 2 }')
		out+="$n "
	done
	echo "$out"
}

s3_delay() { # ms
	echo "$1" >"$S3_DIR/proxy/delay_ms.tmp" && mv "$S3_DIR/proxy/delay_ms.tmp" "$S3_DIR/proxy/delay_ms"
}

# radosgw checks the signature of a query string only when its parameters
# come sorted and percent-encoded, as curl signs them as they are
s3_request() { # method path [curl args]: fails on an HTTP error
	local method=$1 path=$2
	shift 2
	curl -sS -f --max-time 120 -X "$method" --aws-sigv4 "aws:amz:$RGW_REGION:s3" \
		--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: $S3_EMPTY_SHA256" "$@" "$RGW_ENDPOINT$path"
}

s3_keys() { # prefix
	local after="" page q
	while :; do
		q="list-type=2&prefix=${1//\//%2F}%2F"
		[[ -z $after ]] || q+="&start-after=${after//\//%2F}"
		page=$(s3_request GET "/$RGW_BUCKET?$q") || return 1
		printf '%s\n' "$page" | sed 's/<Contents>/\n/g' |
			sed -n 's|^<Key>\([^<]*\)</Key>.*<Size>\([0-9]*\)</Size>.*|\1\t\2|p'
		[[ $page == *'<IsTruncated>true</IsTruncated>'* ]] || break
		after=$(printf '%s' "$page" | grep -o '<Key>[^<]*</Key>' | tail -1 | sed 's/<[^>]*>//g')
	done
}

s3_get() { # key file
	s3_request GET "/$RGW_BUCKET/$1" -o "$2"
}

# radosgw leaves the tail of a deleted object (past its first 4 MB) to its
# garbage collector, which waits two hours: the memory of the OSD would
# grow by every 16 MB segment ever archived.  So the collector runs at once.
s3_delete() { # prefix: DeleteObjects, 1000 keys a request
	local keys body sha md5
	while :; do
		keys=$(s3_keys "$1" | awk -F '\t' 'NR <= 1000 { print $1 }') || return 1
		if [[ -z $keys ]]; then
			radosgw-admin -c "$CEPH_CONF" gc process --include-all >/dev/null 2>&1 ||
				log "WARNING: radosgw-admin gc process failed: the store keeps deleted objects in memory"
			return 0
		fi
		body="<Delete><Quiet>true</Quiet>$(sed 's|.*|<Object><Key>&</Key></Object>|' <<<"$keys" | tr -d '\n')</Delete>"
		sha=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
		md5=$(printf '%s' "$body" | openssl md5 -binary | base64)
		curl -sS -f --max-time 120 --aws-sigv4 "aws:amz:$RGW_REGION:s3" \
			--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
			-H "x-amz-content-sha256: $sha" -H "Content-MD5: $md5" -H 'Content-Type: application/xml' \
			--data-binary "$body" -o /dev/null "$RGW_ENDPOINT/$RGW_BUCKET?delete=" || return 1
	done
}

proxy_counters() { # "CONNECTIONS REQUESTS" the proxy's frontend accepted so far
	perl -MIO::Socket::UNIX -e '
		my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "$ARGV[0]: $!\n";
		print $s "show stat\n";
		my @lines = <$s>;
		my $head = shift @lines;
		$head =~ s/^# //;
		chomp $head;
		my @h = split /,/, $head;
		my %col = map { $h[$_] => $_ } 0 .. $#h;
		for (@lines) {
			my @f = split /,/;
			next unless @f > 2 && $f[0] eq "s3" && $f[1] eq "FRONTEND";
			print "$f[$col{stot}] $f[$col{req_tot}]\n";
			exit 0;
		}
		die "no frontend s3 in HAProxy stats\n";' "$S3_DIR/proxy/stats.sock"
}

# ------------------------------------------------------- CPU accounting ----
# shellcheck disable=SC2034  # used by the scripts
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { # pids...
	local p t sum=0
	for p in "$@"; do
		t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || continue
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

machine_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

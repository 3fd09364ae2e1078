#!/usr/bin/env bash
# A throwaway S3 server for pg_walvault's tests and benchmarks: Ceph's RADOS
# gateway (radosgw, Debian's ceph 16.2 packages) on a one-node cluster whose
# objects live in memory, and optionally HAProxy in front of it to add
# per-request latency and inject 500 errors.
#
#   scripts/rgw.sh start DIR [--port P] [--proxy-port Q|--proxy]
#                  [--bucket NAME] [--owner PID] [--sts]
#                  [--tls-cert PEM [--tls-port T]]
#   scripts/rgw.sh stop DIR           # stop everything (idempotent)
#   scripts/rgw.sh stop-rgw DIR       # stop radosgw only, keep the cluster
#   scripts/rgw.sh start-rgw DIR      # start radosgw again, wait for it
#   scripts/rgw.sh pids DIR [NAME]    # pid of NAME: radosgw (default), mon,
#                                     # osd, haproxy, watchdog; "all": every
#                                     # one as "name pid" lines
#   scripts/rgw.sh bucket DIR NAME    # create another bucket
#   scripts/rgw.sh session-token DIR [SECONDS]   # with --sts: temporary
#                                     # credentials (STS GetSessionToken)
#
# Everything lives under DIR (created if missing, must not hold a running
# cluster): ceph.conf, the daemons' data, pid files and logs
# (DIR/log). Several clusters run side by side, each in its own DIR with its
# own ports. Runs as root or as any other user (the TAP tests run it as
# postgres): nothing is written outside DIR but the port reservations
# /tmp/walvault-rgw-port.N (released by stop).
#
# start prints, and writes to DIR/env as shell assignments ("source
# DIR/env"): RGW_PORT RGW_ENDPOINT (radosgw itself), PROXY_PORT
# PROXY_ENDPOINT (HAProxy; empty without a proxy), AWS_ACCESS_KEY_ID
# AWS_SECRET_ACCESS_KEY (an S3 user's fixed keys), RGW_BUCKET (created
# empty; default "walvault"), RGW_REGION, CEPH_CONF, TLS_PORT TLS_ENDPOINT
# (HTTPS; empty without --tls-cert).
#
# Ports not given are chosen free in 61000-64999 (outside the kernel's
# ephemeral range and PostgreSQL's test ports) and reserved until stop.
# The monitor speaks msgr v1 only, on an address given as [v1:127.0.0.1:N]:
# a bare 127.0.0.1:N makes radosgw speak msgr2 to it and hang.
#
# The proxy (--proxy-port Q, or --proxy for a free port) forwards to
# radosgw with keep-alive and reused connections; at each request its Lua
# action reads
#   DIR/proxy/delay_ms   a number of ms to hold the request (0 or absent:
#                        none), as a remote store's latency;
#   DIR/proxy/fail500    while it exists, requests get "500 InternalError"
#                        with an S3 XML body; a number N in it fails the
#                        next N requests only (decremented, removed at 0).
# Both are read at each request: write them while a test runs.
#
# --tls-cert PEM (the server's certificate, its chain if any, and its
# private key, in one file, as HAProxy reads them) adds HTTPS: HAProxy
# terminates TLS on 127.0.0.1:T (--tls-port T, or a free port) and
# forwards to radosgw as the proxy does, latency and failures included.
# TLS_ENDPOINT is https://127.0.0.1:T: the certificate must name IP
# address 127.0.0.1 in its subjectAltName for clients that verify it.
# Without --proxy HAProxy serves HTTPS only; with it, both.
#
# Without --sts radosgw ignores an x-amz-security-token header (a request
# signed with the static keys passes whatever token it carries). With
# --sts it runs its STS service and checks tokens: "session-token DIR
# [SECONDS]" prints temporary credentials of the S3 user, valid SECONDS
# (default 3600; at least 900: radosgw refuses less), as SESSION_ACCESS_KEY_ID
# SESSION_SECRET_ACCESS_KEY SESSION_TOKEN SESSION_EXPIRATION assignments.
# Requests signed with them need their token (else 403 AccessDenied; a
# wrong token gives 400 InvalidArgument); the static keys keep working
# without a token.
#
# The daemons fork into the background: callers must run "stop" (t/S3Test.pm
# does in END). With --owner PID a watchdog stops the cluster by itself
# once process PID is gone, should the caller die without stopping it.
#
# Requests: path-style URLs, signed with SigV4 (curl --aws-sigv4
# "aws:amz:us-east-1:s3"), with an x-amz-content-sha256 header (the
# payload's SHA-256 or UNSIGNED-PAYLOAD: radosgw refuses the signature
# without it). curl 7.88 signs a header removed with -H 'Expect:' as if it
# were sent: SignatureDoesNotMatch.
#
# Measured here (2 vCPUs): ready to serve, user and bucket made, in 3 to
# 5 s (with the proxy; 14 s without "paxos propose interval" lowered, as
# every pool radosgw creates waits for a map commit), three side by side
# in 3.5 to 5 s; 115 MB resident for the four daemons when idle (mon 31,
# osd 42, radosgw 34, haproxy 7 MB), 0.6% of a CPU; the OSD holds the
# objects in memory (memstore, up to 4 GiB), about 2.2 times their size
# (700 MB after 320 MB written). stop takes under 1 s.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin # haproxy, for users whose PATH lacks them

PROG=$(basename "$0")
ACCESS_KEY=WALVAULTTESTACCESSKEY
SECRET_KEY=walvaultTestSecretKey0000000000000000000
REGION=us-east-1
START_TIMEOUT=${RGW_START_TIMEOUT:-90}
PORT_MIN=61000
PORT_MAX=64999
PORT_LOCK_PREFIX=/tmp/walvault-rgw-port.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

die() { echo "$PROG: $*" >&2; exit 1; }

usage()
{
	sed -n '/^#   scripts/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# the tail of every log, to explain a failed start
show_logs()
{
	local f
	for f in "$DIR"/log/*.log; do
		[ -s "$f" ] || continue
		echo "---- $f (last 25 lines)" >&2
		tail -n 25 "$f" >&2
	done
}

fail_start()
{
	echo "$PROG: $*" >&2
	show_logs
	do_stop >/dev/null 2>&1 || true
	exit 1
}

# pid from a pid file, if that process is alive
live_pid()
{
	local f=$1 pid
	[ -s "$f" ] || return 1
	pid=$(tr -dc 0-9 <"$f")
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
	echo "$pid"
}

pidfile_of()
{
	case $1 in
		mon) echo "$DIR/run/mon.a.pid" ;;
		osd) echo "$DIR/run/osd.0.pid" ;;
		radosgw | rgw) echo "$DIR/run/client.rgw.a.pid" ;;
		haproxy | proxy) echo "$DIR/proxy/haproxy.pid" ;;
		watchdog) echo "$DIR/run/watchdog.pid" ;;
		*) die "unknown daemon $1 (mon, osd, radosgw, haproxy, watchdog)" ;;
	esac
}

# ---- ports

port_in_use()
{
	[ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]
}

# A reservation /tmp/walvault-rgw-port.N names the DIR that holds it. It
# is stale when that DIR does not list the port, or has no live daemon
# and the reservation is older than 5 minutes (a start still under way has
# none yet).
reservation_stale()
{
	local lock=$1 port=$2 owner f
	owner=$(cat "$lock" 2>/dev/null) || return 1
	[ -n "$owner" ] || return 1
	if ! grep -qx "$port" "$owner/ports" 2>/dev/null; then
		# the owner writes its list right after reserving: give it time
		[ -n "$(find "$lock" -mmin +1 2>/dev/null)" ]
		return
	fi
	for f in "$owner"/run/*.pid "$owner"/proxy/haproxy.pid; do
		live_pid "$f" >/dev/null && return 1
	done
	[ -n "$(find "$lock" -mmin +5 2>/dev/null)" ]
}

# reserve_port: print a free port, reserved for DIR
reserve_port()
{
	local tries=0 port lock
	while [ $tries -lt 200 ]; do
		tries=$((tries + 1))
		port=$((PORT_MIN + RANDOM % (PORT_MAX - PORT_MIN + 1)))
		lock=$PORT_LOCK_PREFIX$port
		if [ -e "$lock" ]; then
			reservation_stale "$lock" "$port" && rm -f "$lock" 2>/dev/null || continue
			[ -e "$lock" ] && continue
		fi
		port_in_use "$port" && continue
		# noclobber: creating the file is the atomic test-and-set
		if (set -o noclobber; echo "$DIR" >"$lock") 2>/dev/null; then
			echo "$port" >>"$DIR/ports"
			echo "$port"
			return 0
		fi
	done
	die "no free port found in $PORT_MIN-$PORT_MAX"
}

# a port given by the caller: reserved too if it is in our range
claim_port()
{
	local port=$1
	[[ $port =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] ||
		die "bad port: $port"
	port_in_use "$port" && die "port $port is in use"
	if [ "$port" -ge $PORT_MIN ] && [ "$port" -le $PORT_MAX ]; then
		(set -o noclobber; echo "$DIR" >"$PORT_LOCK_PREFIX$port") 2>/dev/null ||
			[ "$(cat "$PORT_LOCK_PREFIX$port" 2>/dev/null)" = "$DIR" ] ||
			die "port $port is reserved by $(cat "$PORT_LOCK_PREFIX$port" 2>/dev/null)"
	fi
	echo "$port" >>"$DIR/ports"
}

release_ports()
{
	local port
	[ -f "$DIR/ports" ] || return 0
	while read -r port; do
		[ -n "$port" ] || continue
		[ "$(cat "$PORT_LOCK_PREFIX$port" 2>/dev/null)" = "$DIR" ] &&
			rm -f "$PORT_LOCK_PREFIX$port"
	done <"$DIR/ports"
	rm -f "$DIR/ports"
}

# ---- S3 requests (curl signs them with SigV4)

# s3 METHOD PATH [curl args...]: prints the body, then the status on its
# own last line
s3()
{
	local method=$1 path=$2
	shift 2
	curl -sS --max-time 30 -X "$method" \
		--aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
		-H "x-amz-content-sha256: $EMPTY_SHA256" \
		-w '\n%{http_code}' "$@" "http://127.0.0.1:$RGW_PORT$path"
}

# s3_form SERVICE BODY: a signed POST of an urlencoded form (IAM, STS);
# prints the body, then the status on its own last line
s3_form()
{
	local service=$1 body=$2 sha
	sha=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
	curl -sS --max-time 30 \
		--aws-sigv4 "aws:amz:$REGION:$service" --user "$ACCESS_KEY:$SECRET_KEY" \
		-H "x-amz-content-sha256: $sha" \
		-H 'Content-Type: application/x-www-form-urlencoded' \
		--data-binary "$body" -w '\n%{http_code}' "http://127.0.0.1:$RGW_PORT/"
}

# {"Version":"2012-10-17","Statement":[{"Effect":"Allow",
#  "Action":["sts:GetSessionToken"],"Resource":"*"}]}, percent-encoded
STS_POLICY='%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22sts%3AGetSessionToken%22%5D%2C%22Resource%22%3A%22%2A%22%7D%5D%7D'

xml_value()
{
	sed -n "s/.*<$1>\([^<]*\)<\/$1>.*/\1/p" <<<"$2"
}

cmd_session_token()
{
	local seconds=${1:-3600} out status
	load_env
	[ "${RGW_STS:-0}" = 1 ] || die "the cluster in $DIR was started without --sts"
	[[ $seconds =~ ^[0-9]+$ ]] || die "bad duration: $seconds"
	out=$(s3_form sts "Action=GetSessionToken&Version=2011-06-15&DurationSeconds=$seconds") ||
		die "GetSessionToken: curl failed"
	status=${out##*$'\n'}
	[ "$status" = 200 ] || die "GetSessionToken: HTTP $status: ${out%$'\n'*}"
	printf 'SESSION_ACCESS_KEY_ID=%q\n' "$(xml_value AccessKeyId "$out")"
	printf 'SESSION_SECRET_ACCESS_KEY=%q\n' "$(xml_value SecretAccessKey "$out")"
	printf 'SESSION_TOKEN=%q\n' "$(xml_value SessionToken "$out")"
	printf 'SESSION_EXPIRATION=%q\n' "$(xml_value Expiration "$out")"
}

create_bucket()
{
	local name=$1 out status
	[[ $name =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "bad bucket name: $name"
	out=$(s3 PUT "/$name") || die "creating bucket $name: curl failed"
	status=${out##*$'\n'}
	[ "$status" = 200 ] || die "creating bucket $name: HTTP $status: ${out%$'\n'*}"
}

# ---- daemons

# retry CMD...: run a Ceph command-line tool, up to 5 times. A client that
# talks to a monitor started a moment ago is now and then refused "wrong
# fsid" ("Error EPERM: problem getting command descriptions from mon."):
# its first command left before it knew the cluster's fsid. Its stdout is
# printed (of the try that worked), its stderr goes to the setup log.
retry()
{
	local try out
	for try in 1 2 3 4 5; do
		if out=$(timeout 60 "$@" 2>>"$DIR/log/setup.log"); then
			[ -z "$out" ] || printf '%s\n' "$out"
			return 0
		fi
		echo "$PROG: failed (try $try): $*" >>"$DIR/log/setup.log"
		sleep 0.5
	done
	return 1
}

rgw_answers()
{
	local code
	code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$RGW_PORT/" 2>/dev/null) || true
	[ -n "$code" ] && [ "$code" != 000 ]
}

wait_rgw()
{
	local deadline=$((SECONDS + START_TIMEOUT)) pid
	until rgw_answers; do
		if [ $SECONDS -ge $deadline ]; then
			return 1
		fi
		# radosgw gone: no use waiting (it forks; its pid file comes late)
		if [ -s "$(pidfile_of radosgw)" ] && ! pid=$(live_pid "$(pidfile_of radosgw)"); then
			return 1
		fi
		sleep 0.3
	done
}

# start_osd: start the OSD, wait until it has booted; started again if it
# exits meanwhile. (An OSD started right after its new monitor sent its
# first command, to set its place in the CRUSH map, before it knew the
# cluster's fsid, was refused "wrong fsid" and exited: one start in three
# here. It no longer sends those commands: see "osd crush update on start".)
start_osd()
{
	local try pid deadline log=$DIR/log/osd.0.log before
	for try in 1 2 3; do
		before=$(grep -c 'done with init' "$log" 2>/dev/null) || true
		rm -f "$(pidfile_of osd)"
		# it forks, and fails if its child does: the log tells
		ceph-osd -c "$CONF" -i 0 >>"$DIR/log/setup.log" 2>&1 || true
		deadline=$((SECONDS + 30))
		while [ $SECONDS -lt $deadline ]; do
			if [ "$(grep -c 'done with init' "$log" 2>/dev/null)" -gt "${before:-0}" ]; then
				return 0
			fi
			# it forks: gone once its pid file is there and its process not
			if [ -s "$(pidfile_of osd)" ] && ! pid=$(live_pid "$(pidfile_of osd)"); then
				break
			fi
			sleep 0.2
		done
		if pid=$(live_pid "$(pidfile_of osd)"); then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		echo "$PROG: ceph-osd did not come up (try $try), starting it again" >&2
	done
	return 1
}

# start_radosgw: start radosgw, wait until it answers HTTP (tried again
# if it exits early, as the OSD above can)
start_radosgw()
{
	local try pid
	for try in 1 2 3; do
		rm -f "$(pidfile_of radosgw)"
		radosgw -c "$CONF" -n client.rgw.a >>"$DIR/log/radosgw.out" 2>&1 ||
			return 1
		wait_rgw && return 0
		# still running: it timed out, no use trying again
		live_pid "$(pidfile_of radosgw)" >/dev/null && return 1
		echo "$PROG: radosgw exited while starting (try $try), starting it again" >&2
	done
	return 1
}

start_proxy()
{
	mkdir -p "$DIR/proxy"
	cat >"$DIR/proxy/inject.lua" <<EOF
-- Written by scripts/rgw.sh: latency and failures for the S3 proxy.
local dir = [==[$DIR/proxy]==]

local function read_file(name)
	local f = io.open(dir .. "/" .. name, "r")
	if f == nil then return nil end
	local s = f:read("a")
	f:close()
	return s
end

local body = '<?xml version="1.0" encoding="UTF-8"?>\n' ..
	'<Error><Code>InternalError</Code>' ..
	'<Message>We encountered an internal error. Please try again.</Message>' ..
	'<RequestId>walvault-proxy</RequestId></Error>'

core.register_action("walvault_inject", { "http-req" }, function(txn)
	local delay = tonumber(read_file("delay_ms") or "")
	if delay ~= nil and delay > 0 then
		core.msleep(math.floor(delay))
	end
	local fail = read_file("fail500")
	if fail == nil then return end
	local n = tonumber(fail)
	if n ~= nil then
		if n <= 0 then
			os.remove(dir .. "/fail500")
			return
		end
		if n == 1 then
			os.remove(dir .. "/fail500")
		else
			local f = io.open(dir .. "/fail500.tmp", "w")
			if f ~= nil then
				f:write(tostring(math.floor(n - 1)) .. "\n")
				f:close()
				os.rename(dir .. "/fail500.tmp", dir .. "/fail500")
			end
		end
	end
	local reply = txn:reply()
	reply:set_status(500, "Internal Server Error")
	reply:add_header("content-type", "application/xml")
	reply:add_header("x-walvault-proxy", "injected")
	reply:set_body(body)
	txn:done(reply)
end)
EOF
	cat >"$DIR/proxy/haproxy.cfg" <<EOF
# Written by scripts/rgw.sh
global
	nbthread 1
	maxconn 1000
	lua-load $DIR/proxy/inject.lua

defaults
	mode http
	timeout connect 5s
	timeout client 10m
	timeout server 10m
	timeout http-keep-alive 1m
	option http-keep-alive
	http-reuse always

backend rgw
	server rgw 127.0.0.1:$RGW_PORT
EOF
	if [ -n "$PROXY_PORT" ]; then
		cat >>"$DIR/proxy/haproxy.cfg" <<EOF

frontend s3
	bind 127.0.0.1:$PROXY_PORT
	http-request lua.walvault_inject
	default_backend rgw
EOF
	fi
	if [ -n "$TLS_PORT" ]; then
		cat >>"$DIR/proxy/haproxy.cfg" <<EOF

frontend s3tls
	bind 127.0.0.1:$TLS_PORT ssl crt $TLS_CERT
	http-request lua.walvault_inject
	default_backend rgw
EOF
	fi
	haproxy -D -f "$DIR/proxy/haproxy.cfg" -p "$DIR/proxy/haproxy.pid" \
		>>"$DIR/log/haproxy.log" 2>&1 || return 1
}

# a background process that stops the cluster once process OWNER is gone
start_watchdog()
{
	local owner=$1
	[ -d "/proc/$owner" ] || die "--owner $owner: no such process"
	setsid bash -c '
		echo $$ >"$2/run/watchdog.pid"
		while [ -d "/proc/$1" ]; do sleep 2; done
		rm -f "$2/run/watchdog.pid"
		exec "$3" stop "$2"
	' watchdog "$owner" "$DIR" "$SELF" </dev/null >>"$DIR/log/watchdog.log" 2>&1 &
	disown
}

# stop_pids TIMEOUT NAME...: TERM, wait at most TIMEOUT s, then KILL
stop_pids()
{
	local timeout=$1 name pid f deadline
	shift
	local -a pids=()
	for name in "$@"; do
		f=$(pidfile_of "$name")
		if pid=$(live_pid "$f"); then
			kill -TERM "$pid" 2>/dev/null || true
			kill -CONT "$pid" 2>/dev/null || true # if a test left it stopped
			pids+=("$pid")
		fi
	done
	deadline=$((SECONDS + timeout))
	for pid in "${pids[@]}"; do
		while [ -d "/proc/$pid" ] && [ $SECONDS -lt $deadline ]; do
			# a zombie of ours counts as gone
			[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
			sleep 0.1
		done
		[ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	done
	for name in "$@"; do rm -f "$(pidfile_of "$name")"; done
}

do_stop()
{
	local pid
	# the watchdog first, unless we are it
	if pid=$(live_pid "$(pidfile_of watchdog)") && [ "$pid" != "$PPID" ] && [ "$pid" != $$ ]; then
		kill -TERM "$pid" 2>/dev/null || true
	fi
	rm -f "$(pidfile_of watchdog)"
	# radosgw first: without its OSD it takes long to exit
	stop_pids 15 haproxy radosgw
	# memstore writes every object to disk on a clean shutdown (seconds):
	# the cluster is thrown away, so the OSD gets no chance to
	if pid=$(live_pid "$(pidfile_of osd)"); then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	stop_pids 15 osd mon
	release_ports
}

# ---- commands

cmd_start()
{
	local rgw_port='' proxy_port='' want_proxy=0 bucket=walvault owner='' fsid sts=0
	local tls_cert='' tls_port=''
	while [ $# -gt 0 ]; do
		case $1 in
			--port) rgw_port=${2:?--port needs a value}; shift 2 ;;
			--proxy-port) proxy_port=${2:?--proxy-port needs a value}; want_proxy=1; shift 2 ;;
			--proxy) want_proxy=1; shift ;;
			--bucket) bucket=${2:?--bucket needs a value}; shift 2 ;;
			--owner) owner=${2:?--owner needs a value}; shift 2 ;;
			--sts) sts=1; shift ;;
			--tls-cert) tls_cert=${2:?--tls-cert needs a value}; shift 2 ;;
			--tls-port) tls_port=${2:?--tls-port needs a value}; shift 2 ;;
			*) die "start: unknown option $1" ;;
		esac
	done
	for p in mon osd radosgw haproxy; do
		live_pid "$(pidfile_of $p)" >/dev/null &&
			die "a cluster is running in $DIR: stop it first"
	done
	if [ -n "$tls_cert" ]; then
		[ -r "$tls_cert" ] || die "--tls-cert $tls_cert: no such readable file"
		tls_cert=$(cd "$(dirname "$tls_cert")" && pwd)/$(basename "$tls_cert")
	elif [ -n "$tls_port" ]; then
		die "--tls-port needs --tls-cert"
	fi
	local t0=$SECONDS

	# a fresh cluster each time; a previous one's logs are kept aside
	rm -rf "$DIR/mon" "$DIR/osd" "$DIR/run" "$DIR/proxy" "$DIR/rgw" "$DIR/crash" \
		"$DIR/env" "$DIR/monmap" "$DIR/log.old"
	[ -d "$DIR/log" ] && mv "$DIR/log" "$DIR/log.old"
	mkdir -p "$DIR/mon" "$DIR/osd/0" "$DIR/run" "$DIR/log" "$DIR/rgw" "$DIR/crash"
	release_ports

	if [ -n "$rgw_port" ]; then claim_port "$rgw_port"; else rgw_port=$(reserve_port); fi
	MON_PORT=$(reserve_port)
	if [ $want_proxy = 1 ]; then
		if [ -n "$proxy_port" ]; then claim_port "$proxy_port"; else proxy_port=$(reserve_port); fi
	fi
	if [ -n "$tls_cert" ]; then
		if [ -n "$tls_port" ]; then claim_port "$tls_port"; else tls_port=$(reserve_port); fi
	fi
	RGW_PORT=$rgw_port
	PROXY_PORT=$proxy_port
	TLS_PORT=$tls_port
	TLS_CERT=$tls_cert

	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$CONF" <<EOF
# Written by scripts/rgw.sh: a one-node throwaway cluster in $DIR
[global]
	fsid = $fsid
	mon host = [v1:127.0.0.1:$MON_PORT]
	public addr = 127.0.0.1
	cluster addr = 127.0.0.1
	ms bind msgr2 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	keyring = /dev/null
	run dir = $DIR/run
	pid file = $DIR/run/\$name.pid
	# no admin sockets: nothing uses them, and a socket's path is limited
	# to 107 bytes, too few for a deep DIR
	admin socket =
	log file = $DIR/log/\$name.log
	crash dir = $DIR/crash
	log to stderr = false
	err to stderr = false
	log to syslog = false
	err to syslog = false
	mon cluster log file = $DIR/log/\$cluster.\$channel.log
	mon cluster log to syslog = false
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg num = 8
	osd pool default pgp num = 8
	osd pool default pg autoscale mode = off
	osd crush chooseleaf type = 0
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	# commit map changes at once (pool creations wait for them)
	paxos propose interval = 0.05
	paxos min wait = 0.01

[mon]
	mon data = $DIR/mon/\$id

[mon.a]
	mon addr = [v1:127.0.0.1:$MON_PORT]

[osd]
	osd data = $DIR/osd/\$id
	osd objectstore = memstore
	memstore device bytes = 4294967296
	osd max object size = 1073741824
	# placed in the CRUSH map by "ceph osd crush add" at setup
	osd crush update on start = false
	osd class update on start = false

[client]
	# the command-line tools: no pid file
	pid file =
	log file = $DIR/log/client.log

[client.rgw.a]
	pid file = $DIR/run/\$name.pid
	log file = $DIR/log/\$name.log
	rgw data = $DIR/rgw
	rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
	rgw thread pool size = 64
	rgw init timeout = $START_TIMEOUT
	rgw enable usage log = false
	rgw dns name = localhost
EOF
	if [ $sts = 1 ]; then
		cat >>"$CONF" <<EOF
	rgw s3 auth use sts = true
	# encrypts the session tokens: 16 characters
	rgw sts key = walvaultStsKey16
EOF
	fi

	monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$MON_PORT]" \
		"$DIR/monmap" >"$DIR/log/setup.log" 2>&1 ||
		fail_start "monmaptool failed"
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >>"$DIR/log/setup.log" 2>&1 ||
		fail_start "ceph-mon --mkfs failed"
	ceph-mon -c "$CONF" -i a >>"$DIR/log/setup.log" 2>&1 ||
		fail_start "ceph-mon failed to start"

	# with a uuid, "osd create" is idempotent: tried again, it gives the
	# same id
	local osd_id osd_uuid
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	osd_id=$(retry ceph -c "$CONF" --connect-timeout 20 osd create "$osd_uuid") ||
		fail_start "ceph osd create failed (monitor not answering?)"
	[ "$osd_id" = 0 ] || fail_start "ceph osd create gave id '$osd_id', not 0"
	retry ceph -c "$CONF" --connect-timeout 20 osd crush add osd.0 1.0 \
		root=default host=localhost >/dev/null ||
		fail_start "ceph osd crush add failed"
	ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/setup.log" 2>&1 ||
		fail_start "ceph-osd --mkfs failed"
	start_osd || fail_start "ceph-osd failed to start"

	if [ -n "$owner" ]; then start_watchdog "$owner"; fi
	start_radosgw ||
		fail_start "radosgw does not answer on 127.0.0.1:$RGW_PORT"

	retry radosgw-admin -c "$CONF" user create --uid walvault \
		--display-name "pg_walvault tests" \
		--access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >/dev/null ||
		retry radosgw-admin -c "$CONF" user info --uid walvault >/dev/null ||
		fail_start "radosgw-admin user create failed"
	create_bucket "$bucket"
	if [ $sts = 1 ]; then
		# the user may call GetSessionToken: a user policy, which
		# needs the "user-policy" capability to set
		retry radosgw-admin -c "$CONF" caps add --uid walvault \
			--caps 'user-policy=*' >/dev/null ||
			fail_start "radosgw-admin caps add failed"
		local out
		out=$(s3_form iam "Action=PutUserPolicy&Version=2010-05-08&UserName=walvault&PolicyName=sts&PolicyDocument=$STS_POLICY") ||
			fail_start "PutUserPolicy: curl failed"
		[ "${out##*$'\n'}" = 200 ] || fail_start "PutUserPolicy: HTTP ${out##*$'\n'}: ${out%$'\n'*}"
	fi

	if [ $want_proxy = 1 ] || [ -n "$TLS_PORT" ]; then
		start_proxy || fail_start "haproxy failed to start"
	fi
	if [ $want_proxy = 1 ]; then
		local deadline=$((SECONDS + 20)) code
		until code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$PROXY_PORT/") &&
			[ "$code" != 000 ]; do
			[ $SECONDS -lt $deadline ] || fail_start "haproxy does not answer on 127.0.0.1:$PROXY_PORT"
			sleep 0.2
		done
	fi
	if [ -n "$TLS_PORT" ]; then
		# up and speaking TLS (whether its certificate is trusted is for
		# the callers to check: they know the CA)
		local deadline=$((SECONDS + 20)) code
		until code=$(curl -s -k -o /dev/null --max-time 2 -w '%{http_code}' "https://127.0.0.1:$TLS_PORT/") &&
			[ "$code" != 000 ]; do
			[ $SECONDS -lt $deadline ] || fail_start "haproxy does not answer HTTPS on 127.0.0.1:$TLS_PORT"
			sleep 0.2
		done
	fi

	local proxy_endpoint='' tls_endpoint=''
	[ -n "$PROXY_PORT" ] && proxy_endpoint=http://127.0.0.1:$PROXY_PORT
	[ -n "$TLS_PORT" ] && tls_endpoint=https://127.0.0.1:$TLS_PORT
	{
		printf 'RGW_DIR=%q\n' "$DIR"
		printf 'RGW_PORT=%q\n' "$RGW_PORT"
		printf 'RGW_ENDPOINT=%q\n' "http://127.0.0.1:$RGW_PORT"
		printf 'PROXY_PORT=%q\n' "$PROXY_PORT"
		printf 'PROXY_ENDPOINT=%q\n' "$proxy_endpoint"
		printf 'MON_PORT=%q\n' "$MON_PORT"
		printf 'AWS_ACCESS_KEY_ID=%q\n' "$ACCESS_KEY"
		printf 'AWS_SECRET_ACCESS_KEY=%q\n' "$SECRET_KEY"
		printf 'RGW_BUCKET=%q\n' "$bucket"
		printf 'RGW_REGION=%q\n' "$REGION"
		printf 'CEPH_CONF=%q\n' "$CONF"
		printf 'RGW_STS=%q\n' "$sts"
		printf 'TLS_PORT=%q\n' "$TLS_PORT"
		printf 'TLS_ENDPOINT=%q\n' "$tls_endpoint"
	} >"$DIR/env.tmp"
	mv "$DIR/env.tmp" "$DIR/env"
	cat "$DIR/env"
	echo "# ready in $((SECONDS - t0)) s" >&2
}

load_env()
{
	[ -f "$DIR/env" ] || die "no cluster in $DIR (no $DIR/env)"
	# shellcheck disable=SC1091
	source "$DIR/env"
	ACCESS_KEY=$AWS_ACCESS_KEY_ID
	SECRET_KEY=$AWS_SECRET_ACCESS_KEY
}

cmd_start_rgw()
{
	load_env
	live_pid "$(pidfile_of radosgw)" >/dev/null && return 0
	live_pid "$(pidfile_of osd)" >/dev/null || die "the cluster in $DIR is not running"
	start_radosgw || { show_logs; die "radosgw does not answer on 127.0.0.1:$RGW_PORT"; }
}

cmd_pids()
{
	local which=${1:-radosgw} name pid
	if [ "$which" = all ]; then
		for name in mon osd radosgw haproxy watchdog; do
			pid=$(live_pid "$(pidfile_of $name)") && echo "$name $pid"
		done
		return 0
	fi
	live_pid "$(pidfile_of "$which")" || die "$which is not running in $DIR"
}

[ $# -ge 2 ] || usage
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
command=$1
if [ "$command" = start ]; then
	mkdir -p "$2" 2>/dev/null || true
	[ -d "$2" ] || die "cannot create $2"
elif [ ! -d "$2" ]; then
	[ "$command" = stop ] && exit 0 # nothing to stop
	die "no such directory: $2"
fi
DIR=$(cd "$2" && pwd)
CONF=$DIR/ceph.conf
export CEPH_CONF=$CONF
shift 2

case $command in
	start) cmd_start "$@" ;;
	stop) do_stop ;;
	stop-rgw) stop_pids 15 radosgw ;;
	start-rgw) cmd_start_rgw ;;
	pids | pid) cmd_pids "$@" ;;
	session-token) cmd_session_token "$@" ;;
	bucket)
		[ $# -eq 1 ] || usage
		load_env
		create_bucket "$1"
		;;
	*) usage ;;
esac

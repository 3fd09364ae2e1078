#!/usr/bin/env bash
# Run the whole pg_walvault test suite (pg_regress with pgTAP, and the TAP
# tests, each on its own temporary server) on one PostgreSQL version or on
# every supported one.
#
#   bash scripts/test.sh               # every supported version: 15 17 18
#   bash scripts/test.sh 18            # one version (or several: 15 18)
#   PG_CONFIG=/path/to/pg_config bash scripts/test.sh   # that server only
#
# Run as root on a fresh Debian bookworm machine: installs the packages
# (PostgreSQL 15 from Debian's packages; 17 and 18 built once from Debian's
# source packages into a cache, see build-postgres.sh), builds with -Werror
# (make WERROR=1), installs, then runs the tests as an unprivileged user
# (PostgreSQL refuses to run as root) in a copy of the tree that user owns.
# Run as another user, it skips the steps that need root: the servers must
# be there.
#
# PG15_CONFIG names another installation of 15 than Debian's (a private
# copy, for instance, when several trees are tested at once: "make install"
# puts each tree's library into the server it tests).
#
# Versions run side by side, TEST_JOBS (default 3) at a time: each has its
# own copy of the tree and its own installation, and most of a TAP test's
# time is spent waiting; TEST_JOBS=1 runs them one after the other.
#
# Then, as root and when PostgreSQL 15 is among the versions tested (and
# PG_CONFIG is not given), the Debian package stage: scripts/package-test.sh
# builds the package, installs it, archives and restores through a cluster
# of Debian's layout, and purges it again.  It runs after every version's
# suite, because it installs into the same /usr/lib/postgresql/15 as their
# "make install" (whose files it puts back).  PACKAGE_TEST=0 skips it.
#
# The last line says how many stages (one per version, and the package)
# passed and failed; the exit status is non-zero if any failed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
TEST_USER=${TEST_USER:-postgres}
TEST_JOBS=${TEST_JOBS:-3}
SUPPORTED=(15 17 18)
cache=${PG_WALVAULT_CACHE:-/var/cache/pg_walvault}

# pg_config of a version: Debian's package for 15, the cached build for
# the others (built now if missing and we are root).
pg_config_for()
{
	local version=$1
	case $version in
		15) echo "${PG15_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" ;;
		*)
			if [ "$(id -u)" -eq 0 ]; then
				bash "$top/scripts/build-postgres.sh" "$version"
			else
				echo "$cache/pg$version/bin/pg_config"
			fi
			;;
	esac
}

# run_one PG_CONFIG LOG: build, install and test against one server,
# writing everything to LOG.
run_one()
(
	set -euo pipefail
	pg_config=$1
	log=$2
	status=0
	work=$(mktemp -d /tmp/pg_walvault-test.XXXXXX)
	{
		echo "==== $("$pg_config" --version) ($pg_config)"
		cp -a "$top/." "$work/tree"
		rm -rf "$work/tree/.git" "$work/tree/tmp_check" "$work/tree/results"
		cd "$work/tree"
		make -s clean PG_CONFIG="$pg_config" >/dev/null
		make -s PG_CONFIG="$pg_config" WERROR=1
		if [ "$(id -u)" -eq 0 ]; then
			make -s install PG_CONFIG="$pg_config" >/dev/null
			chown -R "$TEST_USER" "$work"
			run=(su "$TEST_USER" -s /bin/bash -c)
		else
			run=(bash -c)
		fi
		"${run[@]}" "cd '$work/tree' && PATH=\"\$('$pg_config' --bindir):\$PATH\" make PG_CONFIG='$pg_config' PROVE_FLAGS='--timer' installcheck" 2>&1 | tee "$work/installcheck.out" || status=$?

		if [ $status -ne 0 ]; then
			echo "==== test failure details"
			[ -f regression.diffs ] && cat regression.diffs
			# the logs of the failing TAP tests only: their own log, then
			# the servers they started
			for t in $(grep -oE '^t/[0-9a-z_]+\.pl +\(Wstat' "$work/installcheck.out" | cut -d. -f1 | sort -u); do
				name=${t#t/}
				for f in "tmp_check/log/regress_log_$name" tmp_check/log/"${name}"_*.log; do
					[ -f "$f" ] || continue
					echo "---- $f (last 150 lines)"
					tail -n 150 "$f"
				done
			done
			# what failed, last, where a truncated log still shows it
			grep -E '^(not ok|#   Failed test|#   at |t/.*Wstat|  Failed test|not ok [0-9]+ +- )|(Dubious|Failed [0-9]+/)' "$work/installcheck.out" >"$log.failed" || true
			[ -s "$log.failed" ] || echo "(no failing test named: see the log above)" >"$log.failed"
		else
			rm -rf "$work"
		fi
		exit $status
	} >"$log" 2>&1
)

if [ "$(id -u)" -eq 0 ]; then
	bash "$top/scripts/install-deps.sh"
fi

# what to test: PG_CONFIG, the versions given, or all
declare -a configs=() labels=()
if [ -n "${PG_CONFIG:-}" ]; then
	configs=("$PG_CONFIG")
	labels=("$("$PG_CONFIG" --version)")
else
	versions=("$@")
	[ ${#versions[@]} -gt 0 ] && [ "${versions[0]}" != all ] || versions=("${SUPPORTED[@]}")
	for v in "${versions[@]}"; do
		case " ${SUPPORTED[*]} " in
			*" $v "*) ;;
			*) echo "test.sh: PostgreSQL $v is not supported (supported: ${SUPPORTED[*]})" >&2; exit 2 ;;
		esac
		configs+=("$(pg_config_for "$v")")
		labels+=("PostgreSQL $v")
	done
fi

logs=$(mktemp -d /tmp/pg_walvault-logs.XXXXXX)
declare -a results=()
for i in "${!configs[@]}"; do
	(
		set +e
		run_one "${configs[$i]}" "$logs/$i.log"
		echo $? >"$logs/$i.rc"
	) &
	# at most TEST_JOBS at once
	while [ "$(jobs -rp | wc -l)" -ge "$TEST_JOBS" ]; do
		wait -n || true
	done
done

wait

# the package stage, once every version's suite is done with
# /usr/lib/postgresql/15
if [ "$(id -u)" -eq 0 ] && [ -z "${PG_CONFIG:-}" ] && [ "${PACKAGE_TEST:-1}" != 0 ] &&
	case " ${versions[*]} " in *" 15 "*) true ;; *) false ;; esac; then
	i=${#configs[@]}
	labels[i]="Debian package (postgresql-15-walvault)"
	configs[i]=package
	echo "==== Debian package: scripts/package-test.sh" >"$logs/$i.log"
	set +e
	bash "$top/scripts/package-test.sh" >>"$logs/$i.log" 2>&1
	echo $? >"$logs/$i.rc"
	set -e
	[ "$(cat "$logs/$i.rc")" = 0 ] || tail -n 1 "$logs/$i.log" >"$logs/$i.log.failed"
fi

passed=0
failed=0
for i in "${!configs[@]}"; do
	if [ "$(cat "$logs/$i.rc" 2>/dev/null)" = 0 ]; then
		results[i]="${labels[$i]}: PASS"
		passed=$((passed + 1))
	else
		results[i]="${labels[$i]}: FAIL"
		failed=$((failed + 1))
	fi
	cat "$logs/$i.log"
done

echo "==== summary"
for i in "${!configs[@]}"; do
	echo "${results[$i]}"
	[ -f "$logs/$i.log.failed" ] && sed 's/^/    /' "$logs/$i.log.failed"
done
rm -rf "$logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

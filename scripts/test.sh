#!/usr/bin/env bash
# Run the whole pg_walvault test suite: pg_regress (with pgTAP) and the TAP
# tests, each on its own temporary server.
#
# Run as root on a fresh Debian bookworm machine: installs the packages,
# builds with -Werror, installs, then runs the tests as an unprivileged user
# (PostgreSQL refuses to run as root) in a copy of the tree that user owns.
# Run as another user, it skips the installation steps that need root.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
TEST_USER=${TEST_USER:-postgres}

if [ "$(id -u)" -eq 0 ]; then
	bash "$top/scripts/install-deps.sh"
fi

work=$(mktemp -d /tmp/pg_walvault-test.XXXXXX)
cp -a "$top/." "$work/tree"
rm -rf "$work/tree/.git" "$work/tree/tmp_check" "$work/tree/results"
cd "$work/tree"
make -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
make -s PG_CONFIG="$PG_CONFIG" COPT=-Werror
if [ "$(id -u)" -eq 0 ]; then
	make -s install PG_CONFIG="$PG_CONFIG" >/dev/null
	chown -R "$TEST_USER" "$work"
	run=(su "$TEST_USER" -s /bin/bash -c)
else
	run=(bash -c)
fi

status=0
"${run[@]}" "cd '$work/tree' && PATH=\"\$($PG_CONFIG --bindir):\$PATH\" make PG_CONFIG='$PG_CONFIG' PROVE_FLAGS='--timer' installcheck" || status=$?

if [ $status -ne 0 ]; then
	echo "==== test failure details ====" >&2
	[ -f regression.diffs ] && cat regression.diffs >&2
	for f in tmp_check/log/regress_log_* tmp_check/log/*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 80 lines)" >&2
		tail -n 80 "$f" >&2
	done
	exit $status
fi
rm -rf "$work"

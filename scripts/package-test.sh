#!/usr/bin/env bash
# The Debian package, the way a DBA installs and runs it, on Debian
# bookworm, as root:
#
#   bash scripts/package-test.sh [TREE]    # default: this source tree
#
# 1. scripts/check-release.sh: META.json against PGXN's spec, and the
#    versions of CHANGELOG, META.json, debian/changelog and the control file
#    agree; where the tree is a git checkout, the same of what `make dist`
#    puts in pg_walvault-VERSION.zip for PGXN;
# 2. the build dependencies of debian/control (apt-get build-dep), then
#    dpkg-buildpackage -us -uc in a copy of the tree without .git or build
#    outputs, with an orig tarball made from that copy (the source format is
#    3.0 (quilt): the Debian revision is -1, upstream ships debian/);
# 3. apt-get install ./postgresql-15-walvault_*.deb, and the files where
#    Debian's PostgreSQL 15 looks for them;
# 4. pg_createcluster 15 walvault_pkgtest on a free port of its own, the
#    settings in its conf.d/ and a variable in its environment file,
#    pg_ctlcluster start; CREATE EXTENSION, every view read, segments
#    archived through pg_walvault (zstd) and one restored with the installed
#    /usr/lib/postgresql/15/bin/pg_walvault_restore, compared with pg_wal;
# 5. the package's autopkgtest (debian/tests): with autopkgtest on this
#    machine (null testbed) when it can be installed, else its script run
#    as autopkgtest would run it;
# 6. always, also after a failure: the cluster dropped, the package purged,
#    and any files the package had replaced (those of a "make install" into
#    /usr/lib/postgresql/15) put back.
#
# A rerun starts with step 6, so a run killed halfway leaves nothing that
# stops the next one.  The last line is "package test: PASS" or "package
# test: FAIL (the step that failed)"; the exit status is non-zero on failure.
#
# PKGTEST_DIR (default /tmp/pg_walvault-pkgtest) is the work directory (the
# build log and the .debs stay there); PKGTEST_PORT the cluster's port
# (default: the first free one from 5491).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${1:-$top}" && pwd)
PG_MAJOR=15
CLUSTER=walvault_pkgtest
work=${PKGTEST_DIR:-/tmp/pg_walvault-pkgtest}
archive=/var/lib/postgresql/$CLUSTER.archive
pkg=postgresql-$PG_MAJOR-walvault
bindir=/usr/lib/postgresql/$PG_MAJOR/bin
backup=/var/tmp/pg_walvault-pkgtest.replaced # outside $work: a rerun removes $work
step=start

export DEBIAN_FRONTEND=noninteractive
say() { echo "== package: $*"; }
apt_install() { apt-get install -y -qq --no-install-recommends "$@" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; return 1; }; }

# step 6, also run first: nothing of ours left, what we replaced back
cleanup()
{
	if pg_lsclusters -h 2>/dev/null | awk '{ print $1 "/" $2 }' | grep -qx "$PG_MAJOR/$CLUSTER"; then
		pg_dropcluster --stop "$PG_MAJOR" "$CLUSTER" || true
	fi
	if dpkg-query -W -f='${db:Status-Status}\n' "$pkg" 2>/dev/null | grep -qv '^not-installed$'; then
		apt-get purge -y -qq "$pkg" >/dev/null 2>&1 || dpkg --purge "$pkg" || true
	fi
	# files only, each onto its own path: never a directory's mode or owner
	if [ -f "$backup/list" ]; then
		while read -r n path; do
			mkdir -p "$(dirname "$path")" # the purge removes directories it emptied
			cp -p "$backup/$n" "$path"
		done <"$backup/list"
	fi
	rm -rf "$backup"
	rm -rf "$archive"
}

finish()
{
	status=$?
	trap - EXIT
	set +e
	if [ $status -ne 0 ]; then
		if [ "$step" = "build" ] && [ -f "$work/build.log" ]; then
			echo "---- $work/build.log (last 60 lines)"
			tail -n 60 "$work/build.log"
		fi
		log=/var/log/postgresql/postgresql-$PG_MAJOR-$CLUSTER.log
		if [ -f "$log" ]; then
			echo "---- $log (last 40 lines)"
			tail -n 40 "$log"
		fi
	fi
	say "cleaning up: cluster $PG_MAJOR/$CLUSTER dropped, $pkg purged"
	cleanup
	if [ $status -eq 0 ]; then
		echo "package test: PASS"
	else
		echo "package test: FAIL ($step)"
	fi
	exit $status
}

if [ "$(id -u)" -ne 0 ]; then
	echo "package-test.sh: run as root (it installs packages and creates a cluster)" >&2
	exit 2
fi
# one run at a time on a machine: they share the cluster's name
exec 9>/run/lock/pg_walvault-pkgtest.lock
flock 9
trap finish EXIT

step="cleanup of an earlier run"
cleanup
rm -rf "$work"
mkdir -p "$work"

step="tools"
say "installing the packaging tools"
apt-get update -qq
apt_install dpkg-dev debhelper postgresql-common python3-jsonschema

step="release metadata"
say "release metadata ($src)"
bash "$top/scripts/check-release.sh" "$src"

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
upstream=${version%-*}

step="make dist"
# what PGXN gets: the committed tree, so only where it is committed
if git -C "$src" cat-file -e HEAD:META.json 2>/dev/null; then
	say "make dist"
	make -s -C "$src" dist PG_CONFIG="$bindir/pg_config" >/dev/null
	mv "$src/pg_walvault-$upstream.zip" "$work/"
	/usr/bin/python3 -m zipfile -e "$work/pg_walvault-$upstream.zip" "$work/dist"
	[ -f "$work/dist/pg_walvault-$upstream/META.json" ] ||
		{ echo "pg_walvault-$upstream.zip has no pg_walvault-$upstream/META.json" >&2; exit 1; }
	bash "$top/scripts/check-release.sh" "$work/dist/pg_walvault-$upstream" >/dev/null ||
		{ echo "the metadata of pg_walvault-$upstream.zip (HEAD) do not agree:" >&2;
		  bash "$top/scripts/check-release.sh" "$work/dist/pg_walvault-$upstream" >&2; exit 1; }
	echo "    pg_walvault-$upstream.zip: $(/usr/bin/python3 -m zipfile -l "$work/pg_walvault-$upstream.zip" | tail -n +2 | wc -l) entries, its metadata agree"
else
	say "make dist skipped: META.json is not committed in $src"
fi
build=$work/pg-walvault-$upstream
arch=$(dpkg --print-architecture)
deb=$work/${pkg}_${version}_$arch.deb

step="build"
say "dpkg-buildpackage -us -uc of pg-walvault $version ($build)"
mkdir "$build"
# the tree as a release has it: no VCS, no build or test outputs
tar -C "$src" --exclude-vcs --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=./pg_walvault_restore --exclude=./src/.server-version \
	--exclude=./tmp_check --exclude=./results --exclude=./log \
	--exclude='./regression.*' --exclude=./bench/results --exclude='./*.zip' \
	-cf - . | tar -C "$build" -xf -
tar -C "$work" --exclude="pg-walvault-$upstream/debian" \
	-cJf "$work/pg-walvault_$upstream.orig.tar.xz" "pg-walvault-$upstream"
apt-get build-dep -y -qq "$build" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; exit 1; }
(cd "$build" && dpkg-buildpackage -us -uc -j"$(nproc)") >"$work/build.log" 2>&1
ls "$work"/*.deb "$work"/*.dsc | sed 's|^|    |'

step="install"
say "apt-get install ./$(basename "$deb")"
# a "make install" into the same directories leaves files no package owns,
# which dpkg overwrites: keep them, to put them back after the purge
mkdir -p "$backup"
n=0
while read -r path; do
	path=${path#.}
	if [ -f "$path" ] && [ ! -L "$path" ] && ! dpkg -S "$path" >/dev/null 2>&1; then
		n=$((n + 1))
		cp -p "$path" "$backup/$n"
		echo "$n $path" >>"$backup/list"
	fi
done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t)
[ $n -eq 0 ] || echo "    $n files of an earlier \"make install\" kept, to be put back after the purge"
(cd "$work" && apt_install "./$(basename "$deb")")
for f in "$bindir/pg_walvault_restore" \
	"/usr/lib/postgresql/$PG_MAJOR/lib/pg_walvault.so" \
	"/usr/share/postgresql/$PG_MAJOR/extension/pg_walvault.control" \
	"/usr/share/postgresql/$PG_MAJOR/extension/pg_walvault--1.0.sql"; do
	dpkg -S "$f" | grep -q "^$pkg:" || { echo "$f is not in $pkg" >&2; exit 1; }
done
control_version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "/usr/share/postgresql/$PG_MAJOR/extension/pg_walvault.control")
"$bindir/pg_walvault_restore" -V | grep -qw "$control_version" ||
	{ echo "pg_walvault_restore -V: $("$bindir/pg_walvault_restore" -V), expected $control_version" >&2; exit 1; }
echo "    $pkg $(dpkg-query -W -f='${Version}' "$pkg"), extension $control_version, $("$bindir/pg_walvault_restore" -V)"

step="cluster"
port=${PKGTEST_PORT:-}
if [ -z "$port" ]; then
	port=5491
	while pg_lsclusters -h | awk '{ print $3 }' | grep -qx "$port" ||
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
		[ -e "/var/run/postgresql/.s.PGSQL.$port" ]; do
		port=$((port + 1))
	done
fi
say "pg_createcluster $PG_MAJOR $CLUSTER -p $port"
pg_createcluster "$PG_MAJOR" "$CLUSTER" -p "$port" >/dev/null
conf=/etc/postgresql/$PG_MAJOR/$CLUSTER
install -d -o postgres -g postgres -m 700 "$archive"
cat >"$conf/conf.d/pg_walvault.conf" <<EOF
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_directory = '$archive'
pg_walvault.compression = 'zstd'
EOF
# where a DBA puts the object store's credentials: the server's environment
echo "PG_WALVAULT_PKGTEST = 'from the environment file'" >>"$conf/environment"
pg_ctlcluster "$PG_MAJOR" "$CLUSTER" start
datadir=$(pg_lsclusters -h | awk -v v="$PG_MAJOR" -v c="$CLUSTER" '$1 == v && $2 == c { print $6 }')
postmaster=$(head -n 1 "$datadir/postmaster.pid")
tr '\0' '\n' <"/proc/$postmaster/environ" | grep -qx 'PG_WALVAULT_PKGTEST=from the environment file' ||
	{ echo "the server did not get the variable of $conf/environment" >&2; exit 1; }

q() { (cd / && runuser -u postgres -- psql --cluster "$PG_MAJOR/$CLUSTER" -X -q -At -v ON_ERROR_STOP=1 "$@"); }

step="extension"
say "CREATE EXTENSION pg_walvault; the views"
q -c 'CREATE EXTENSION pg_walvault'
got=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault'")
[ "$got" = "$control_version" ] || { echo "extension version $got, expected $control_version" >&2; exit 1; }
[ "$(q -c 'SHOW archive_library')" = pg_walvault ]
for view in pg_stat_walvault pg_stat_walvault_workers pg_stat_walvault_history pg_stat_walvault_store; do
	echo "    $view: $(q -c "SELECT count(*) FROM $view") rows"
done

step="archive"
say "archiving through pg_walvault into $archive"
before=$(q -c 'SELECT archived_count FROM pg_stat_archiver')
q -c 'CREATE TABLE pkgtest(x int)'
for i in 1 2 3; do
	q -c 'INSERT INTO pkgtest SELECT generate_series(1, 50000)' -c 'SELECT pg_switch_wal()' >/dev/null
done
for i in $(seq 1 120); do
	[ "$(q -c "SELECT archived_count >= $before + 3 FROM pg_stat_archiver")" = t ] &&
		[ "$(q -c 'SELECT archived_count >= 3 FROM pg_stat_walvault')" = t ] && break
	sleep 0.5
done
q -x -c 'SELECT archived_count, stored_bytes, failed_count, last_archived_wal, last_error, active_workers FROM pg_stat_walvault' | sed 's/^/    /'
[ "$(q -c "SELECT archived_count >= $before + 3 FROM pg_stat_archiver")" = t ] ||
	{ echo "the server archived nothing in 60 s" >&2; q -x -c 'SELECT * FROM pg_stat_archiver' >&2; exit 1; }
[ "$(q -c 'SELECT archived_count >= 3 AND failed_count = 0 FROM pg_stat_walvault')" = t ] ||
	{ echo "pg_stat_walvault counts no archived file, or failures" >&2; exit 1; }
segment=$(q -c 'SELECT last_archived_wal FROM pg_stat_archiver')
[ -f "$archive/$segment.zst" ] || { echo "$archive/$segment.zst missing" >&2; ls -l "$archive" >&2; exit 1; }
echo "    $(ls "$archive" | grep -c '\.zst$') segments in the archive, the last $segment.zst"

step="restore"
say "restoring $segment with $bindir/pg_walvault_restore"
restored=$work/restored
install -d -o postgres "$restored"
(cd "$datadir" && runuser -u postgres -- "$bindir/pg_walvault_restore" -d "$archive" "$segment" "$restored/$segment")
[ "$(stat -c %s "$restored/$segment")" -eq "$(q -c "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")" ]
if [ -f "$datadir/pg_wal/$segment" ]; then
	cmp "$datadir/pg_wal/$segment" "$restored/$segment"
	echo "    identical to pg_wal/$segment"
fi

# 1.3 on: the verify function on this archive runs (what it finds is the
# suite's business: this archive has no base backup)
if [ "$(q -c "SELECT count(*) FROM pg_proc WHERE proname = 'pg_walvault_verify'")" != 0 ]; then
	step="verify"
	say "pg_walvault_verify()"
	q -c "SELECT status FROM pg_walvault_verify() WHERE kind = 'summary'" | grep -qxE 'clean|problems'
	q -c "SELECT kind, status, first_file, last_file FROM pg_walvault_verify() WHERE kind IN ('timeline', 'summary')" 2>/dev/null | sed 's/^/    /' || true
fi
pg_dropcluster --stop "$PG_MAJOR" "$CLUSTER"

step="autopkgtest"
if command -v autopkgtest >/dev/null || apt_install autopkgtest; then
	say "autopkgtest (null testbed)"
	autopkgtest --output-dir="$work/autopkgtest" "$deb" "$build/" -- null >"$work/autopkgtest.log" 2>&1 ||
		{ cat "$work/autopkgtest.log"; exit 1; }
	grep -E '^(ok|not ok) - |^[a-z-]+ +(PASS|FAIL|SKIP)' "$work/autopkgtest.log" | sed 's/^/    /'
else
	say "debian/tests/archive-restore (autopkgtest cannot be installed: run as it would)"
	(cd "$build" && AUTOPKGTEST_TMP=$(mktemp -d) debian/tests/archive-restore)
fi

step="done"

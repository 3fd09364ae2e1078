#!/usr/bin/env bash
# Build a PostgreSQL server (17 or 18) from Debian's source package, with
# what pg_walvault's tests need: TAP test modules, lz4 and zstd,
# contrib/basic_archive, injection points (with the injection_points test
# module, which holds a process at a named point so that a race can be
# tested deterministically), and pgTAP from Debian's pgtap source package.
#
#   bash scripts/build-postgres.sh 17      # prints the pg_config path
#
# Debian bookworm ships PostgreSQL 15 only, and the binary packages of newer
# suites do not install on it; their source packages build fine.  17 comes
# from trixie, 18 from sid (a deb-src entry for bookworm, trixie and sid is
# added if missing).  The upstream sources are built without Debian's patches
# (those move sockets and directories for Debian's cluster wrapper, which the
# tests do not use).
#
# The result lives in a cache outside the repository,
# ${PG_WALVAULT_CACHE:-/var/cache/pg_walvault}/pg<version>, and is reused:
# running this again for a version that is built costs nothing.  Needs root
# for apt-get (unless everything is installed already) and a writable cache.
set -euo pipefail

version=${1:?usage: build-postgres.sh VERSION}
cache=${PG_WALVAULT_CACHE:-/var/cache/pg_walvault}
prefix=$cache/pg$version
stamp=$prefix/.pg_walvault-built
jobs=${BUILD_JOBS:-3}

case $version in
	17) suite=trixie ;;
	18) suite=sid ;;
	*) echo "build-postgres.sh: no source package known for PostgreSQL $version" >&2; exit 2 ;;
esac

# What the build was made with: change it and the build is made again.
recipe="configure --enable-tap-tests --enable-injection-points --with-lz4 --with-zstd --without-icu; basic_archive; injection_points; test/perl; pgtap"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ]; then
	echo "$prefix/bin/pg_config"
	exit 0
fi

log() { echo "build-postgres.sh: $*" >&2; }

packages=(gcc make bison flex perl libreadline-dev zlib1g-dev
	libzstd-dev liblz4-dev libipc-run-perl pkg-config curl)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

src_list=/etc/apt/sources.list.d/pg_walvault-src.sources
need_update=false
if ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ ||
	! grep -rqsw "$suite" /etc/apt/sources.list.d/*.sources; then
	log "adding deb-src entries for bookworm, trixie and sid ($src_list)"
	cat >"$src_list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	need_update=true
fi
if [ ${#missing[@]} -gt 0 ] || $need_update; then
	apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# fetch_source PACKAGE SUITE DIR: the upstream sources of a Debian source
# package, unpacked into DIR.  Only the upstream tarball (.orig.tar.*) is
# used: Debian's patches adapt the server to Debian's cluster wrapper, which
# the tests do not use.  The tarball is checked against the SHA-256 sum that
# apt's signed index lists.  The mirror this project reaches does not hold
# every file its index lists: the suite's version is tried first, then the
# other versions the index knows, and last the earlier point releases of
# the suite's version, checked against the sums in their .dsc files.
fetch_source()
{
	local pkg=$1 suite=$2 dir=$3 url v sum file base minor candidates

	url=http://deb.debian.org/debian/pool/main/${pkg:0:1}/$pkg
	# "version sha256 file" for every upstream tarball the index lists
	candidates=$(
		{
			apt-cache showsrc "$pkg/$suite" 2>/dev/null
			apt-cache showsrc "$pkg" 2>/dev/null
		} | awk '/^Version:/ { v = $2 }
			/^Checksums-Sha256:/ { on = 1; next }
			/^[^ ]/ { on = 0 }
			on && $3 ~ /\.orig\.tar\./ { print v, $1, $3 }' | awk '!seen[$0]++')

	log "fetching $pkg ($suite)"
	while read -r v sum file; do
		[ -n "$file" ] || continue
		if curl -sf -o "$file" "$url/$file" &&
			echo "$sum  $file" | sha256sum -c --quiet >/dev/null 2>&1; then
			log "using $pkg $v"
			mkdir -p "$dir"
			tar -xf "$file" -C "$dir" --strip-components=1
			return 0
		fi
		rm -f "$file"
	done <<<"$candidates"

	v=$(head -n 1 <<<"$candidates" | cut -d' ' -f1)
	base=${v%%-*}
	minor=${base##*.}
	while [ -n "$v" ] && [ "$minor" -gt 0 ]; do
		minor=$((minor - 1))
		v=${base%.*}.$minor-${v#*-}
		curl -sf -o dsc "$url/${pkg}_${v/+/%2b}.dsc" || continue
		read -r sum file < <(awk '/^Checksums-Sha256:/ { on = 1; next }
			/^[^ ]/ { on = 0 }
			on && $3 ~ /\.orig\.tar\./ { print $1, $3 }' dsc)
		if [ -n "$file" ] && curl -sf -o "$file" "$url/$file" &&
			echo "$sum  $file" | sha256sum -c --quiet >/dev/null 2>&1; then
			log "using $pkg $v (the files of the indexed version are not on the mirror)"
			mkdir -p "$dir"
			tar -xf "$file" -C "$dir" --strip-components=1
			return 0
		fi
	done
	log "could not download $pkg from $url"
	return 1
}

work=$(mktemp -d /tmp/pg_walvault-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

fetch_source postgresql-"$version" "$suite" src

log "building PostgreSQL $version into $prefix (make -j$jobs)"
rm -rf "$prefix"
cd src
./configure -q --prefix="$prefix" --enable-tap-tests --enable-injection-points \
	--with-lz4 --with-zstd --without-icu >/dev/null
make -s -j"$jobs" >/dev/null
make -s install >/dev/null
make -s -C contrib/basic_archive install >/dev/null
make -s -C src/test/modules/injection_points install >/dev/null
make -s -C src/test/perl install >/dev/null
cd "$work"

# pgTAP: the newest source Debian has, built for this server
log "building pgTAP for PostgreSQL $version"
fetch_source pgtap sid pgtap
make -s -C pgtap PG_CONFIG="$prefix/bin/pg_config" >/dev/null
make -s -C pgtap PG_CONFIG="$prefix/bin/pg_config" install >/dev/null

echo "$recipe" >"$stamp"
log "PostgreSQL $version is ready"
echo "$prefix/bin/pg_config"

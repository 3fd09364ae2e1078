#!/usr/bin/env bash
# Install what pg_walvault needs to build, run and test on Debian bookworm.
# Run as root.  Does nothing when everything is installed already.
#
# Tests only: gdb holds an archive worker with the main lock
# (t/019_history_lock.pl); prometheus-postgres-exporter (0.11.1 in
# bookworm) scrapes monitoring/postgres_exporter.yaml (t/020).
#
# Object store tests: a real S3 server, Ceph's RADOS gateway on a one-node
# in-memory cluster (ceph-mon ceph-osd radosgw ceph-common), with HAProxy
# (built with Lua) in front of it to add latency and inject failures, all
# started by scripts/rgw.sh; libcurl4-openssl-dev to build the S3 client,
# curl and openssl for the scripts and tests, awscli for comparisons.
set -euo pipefail

packages=(
	make gcc
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
	libzstd-dev liblz4-dev zlib1g-dev
	zstd lz4 gzip
	gdb prometheus-postgres-exporter
	ceph-mon ceph-osd radosgw ceph-common haproxy
	libcurl4-openssl-dev curl openssl awscli
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run this script as root)" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

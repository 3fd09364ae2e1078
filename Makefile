# pg_walvault: parallel WAL archiving for PostgreSQL (PGXS build)

MODULE_big = pg_walvault
OBJS = \
	src/pg_walvault.o \
	src/guc.o \
	src/shmem.o \
	src/counters.o \
	src/queue.o \
	src/coordinator.o \
	src/archive_worker.o \
	src/archiver.o \
	src/archive_status.o \
	src/archive_file.o \
	src/archive_marker.o \
	src/target_directory.o \
	src/target_command.o \
	src/target_s3.o \
	src/s3_client.o \
	src/s3_credentials.o \
	src/compare.o \
	src/codec.o \
	src/wal_names.o \
	src/collector.o \
	src/history.o \
	src/stats_file.o \
	src/wal_status.o \
	src/views.o \
	src/verify_sql.o \
	src/wait_events.o
PGFILEDESC = "pg_walvault - parallel WAL archiving"

EXTENSION = pg_walvault
DATA = sql/pg_walvault--1.0.sql sql/pg_walvault--1.0--1.1.sql \
	sql/pg_walvault--1.1--1.2.sql sql/pg_walvault--1.2--1.3.sql

REGRESS = pg_walvault guc_units contract upgrade
REGRESS_OPTS = --temp-config=$(srcdir)/sql/regress.conf --temp-instance=./tmp_check
TAP_TESTS = 1

# The version of the library and of the restore program is the extension's.
WALVAULT_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" pg_walvault.control)

PG_CPPFLAGS = -I$(srcdir)/src -DWALVAULT_VERSION='"$(WALVAULT_VERSION)"'
# Warnings never fail a build unless asked: a packager's newer compiler
# warns of things ours does not.  The tests build with WERROR=1.
PG_CFLAGS = -Wall
ifneq ($(filter-out 0 no,$(WERROR)),)
PG_CFLAGS += -Werror
endif
SHLIB_LINK = -lzstd -llz4 -lz -lcurl

# The restore program is a plain frontend binary; PGXS builds one PROGRAM or
# one MODULE_big per Makefile, so it gets its own rules.
RESTORE = pg_walvault_restore
RESTORE_OBJS = \
	src/restore/pg_walvault_restore.o \
	src/restore/report.o \
	src/restore/wal_check.o \
	src/restore/wal_records.o \
	src/restore/sha256.o \
	src/restore/fetch.o \
	src/restore/marker.o \
	src/restore/source_directory.o \
	src/restore/source_s3.o \
	src/restore/spool.o \
	src/restore/prefetch_client.o \
	src/restore/prefetcher.o \
	src/restore/verify.o
EXTRA_CLEAN = $(RESTORE) $(RESTORE_OBJS) src/.server-version

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

all: $(RESTORE)

# PGXS tracks no header dependencies unless the server was built with
# --enable-depend; every object depends on the shared layout.
$(OBJS): src/pg_walvault.h src/walvault_shmem.h src/compat.h src/codec.h \
	src/wal_names.h src/s3_client.h

# Nor does it notice that objects were built for another server version:
# a stamp that changes with the server makes everything rebuild.
SERVER_STAMP = src/.server-version
$(shell echo '$(VERSION)' | cmp -s - $(SERVER_STAMP) || echo '$(VERSION)' >$(SERVER_STAMP))
$(OBJS) $(RESTORE_OBJS): $(SERVER_STAMP)

# codec.c, wal_names.c and the S3 client use no PostgreSQL header: the module and the
# program share them.  wal_records.c and sha256.c check record CRCs and
# hash with the server's CRC-32C and SHA-256, from the static frontend
# libraries (in libdir, or in pkglibdir on Debian), which need OpenSSL's
# libcrypto if the server was built with it.
RESTORE_PGLIBDIR = $(firstword $(dir $(wildcard $(libdir)/libpgport.a \
	$(pkglibdir)/libpgport.a)))
$(RESTORE): $(RESTORE_OBJS) src/codec.o src/wal_names.o src/s3_client.o \
	src/s3_credentials.o
	$(CC) $(CFLAGS) $^ $(LDFLAGS) $(RESTORE_PGLIBDIR)libpgcommon.a \
		$(RESTORE_PGLIBDIR)libpgport.a $(filter -lcrypto,$(LIBS)) \
		-lzstd -llz4 -lz -lcurl -o $@

$(RESTORE_OBJS): src/restore/restore.h src/codec.h src/wal_names.h \
	src/s3_client.h
# it checks that a segment is WAL of the server asking, by default this one
src/restore/wal_check.o: CPPFLAGS += -DWV_SERVER_MAJOR=$(MAJORVERSION)

install: install-restore
installdirs: installdirs-restore

installdirs-restore:
	$(MKDIR_P) '$(DESTDIR)$(bindir)'

install-restore: $(RESTORE) installdirs-restore
	$(INSTALL_PROGRAM) $(RESTORE) '$(DESTDIR)$(bindir)/$(RESTORE)'

uninstall: uninstall-restore
uninstall-restore:
	rm -f '$(DESTDIR)$(bindir)/$(RESTORE)'

.PHONY: install-restore installdirs-restore uninstall-restore

# make dist: the archive PGXN takes, pg_walvault-VERSION.zip of the
# committed tree (HEAD), VERSION being META.json's release version.
DIST_VERSION := $(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' $(srcdir)/META.json 2>/dev/null)
DIST = $(EXTENSION)-$(DIST_VERSION)

dist:
	@test -n '$(DIST_VERSION)' || { echo 'dist: no version in META.json' >&2; exit 1; }
	git -C '$(srcdir)' archive --format=zip --prefix='$(DIST)/' -o '$(CURDIR)/$(DIST).zip' HEAD
	@echo '$(DIST).zip'

.PHONY: dist

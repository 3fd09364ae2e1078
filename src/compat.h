/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every difference between the PostgreSQL versions pg_walvault supports
 *	  (15, 16, 17 and 18), in one place.
 *
 * The rest of the code uses only the names defined here, never
 * PG_VERSION_NUM, so that reading this file tells everything a new server
 * version changed for us, and porting means editing this file alone:
 *
 * - 16 redesigned the archive module API (callbacks take an
 *	 ArchiveModuleState, the init function returns a const struct, the header
 *	 moved) and gave GUC check hooks their own allocator.
 * - 17 numbers processes with ProcNumber (PGPROC lost its pgprocno field),
 *	 lets extensions name their wait events, lets an archive module say why
 *	 it is not configured, traps ERRORs in archive callbacks itself (ours
 *	 trap their own first, so that they are counted in our views on every
 *	 version), moved checkpoint counts to pg_stat_checkpointer, and
 *	 replaced IsBackgroundWorker by the process's backend type.
 * - 18 moved pg_stat_wal's counters into a sub-struct and lets a library
 *	 tell its name and version (pg_get_loaded_modules()).
 *
 * The WAL page magic of each version, which the restore program checks, is
 * in src/restore/wal_versions.h (a frontend program includes no server
 * header).
 *
 * src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_COMPAT_H
#define WALVAULT_COMPAT_H

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/wait_event.h"

#if PG_VERSION_NUM < 150000
#error "pg_walvault requires PostgreSQL 15 or later"
#endif

/*
 * The library's magic block; 18 adds the name and version that
 * pg_get_loaded_modules() shows.
 */
#if PG_VERSION_NUM >= 180000
#define WALVAULT_MODULE_MAGIC \
	PG_MODULE_MAGIC_EXT(.name = "pg_walvault", .version = WALVAULT_VERSION)
#else
#define WALVAULT_MODULE_MAGIC	PG_MODULE_MAGIC
#endif

/*
 * Archive module API.  WALVAULT_DEFINE_ARCHIVE_MODULE(init, check, archive)
 * defines _PG_archive_module_init(), which calls init() and hands the
 * server the callbacks check and archive.  The callbacks are declared with
 * WALVAULT_ARCHIVE_STATE_PARAM / _COMMA as their (first) parameter, which
 * is the module state from 16 on and nothing before.
 */
#if PG_VERSION_NUM >= 160000
#include "archive/archive_module.h"

#define WALVAULT_ARCHIVE_STATE_PARAM	ArchiveModuleState *state
#define WALVAULT_ARCHIVE_STATE_COMMA	ArchiveModuleState *state,

#define WALVAULT_DEFINE_ARCHIVE_MODULE(init, check, archive) \
	static const ArchiveModuleCallbacks walvault_archive_callbacks = { \
		.startup_cb = NULL, \
		.check_configured_cb = (check), \
		.archive_file_cb = (archive), \
		.shutdown_cb = NULL \
	}; \
	const ArchiveModuleCallbacks * \
	_PG_archive_module_init(void) \
	{ \
		(init) (); \
		return &walvault_archive_callbacks; \
	}
#else
#include "postmaster/pgarch.h"

#define WALVAULT_ARCHIVE_STATE_PARAM	void
#define WALVAULT_ARCHIVE_STATE_COMMA

#define WALVAULT_DEFINE_ARCHIVE_MODULE(init, check, archive) \
	extern PGDLLEXPORT void _PG_archive_module_init(ArchiveModuleCallbacks *cb); \
	void \
	_PG_archive_module_init(ArchiveModuleCallbacks *cb) \
	{ \
		(init) (); \
		cb->check_configured_cb = (check); \
		cb->archive_file_cb = (archive); \
		cb->shutdown_cb = NULL; \
	}
#endif

/*
 * Why archiving is not configured, for check_configured_cb returning false:
 * 17 adds it as the DETAIL of the server's "archiving is not configured"
 * warning; before 17 the server has no way to show it.
 */
#if PG_VERSION_NUM >= 170000
#define walvault_not_configured_detail(...) \
	arch_module_check_errdetail(__VA_ARGS__)
#else
#define walvault_not_configured_detail(...)	((void) 0)
#endif

/* Set-returning functions: the helper was renamed in 16. */
#if PG_VERSION_NUM >= 160000
#define walvault_init_srf(fcinfo)	InitMaterializedSRF((fcinfo), 0)
#else
#define walvault_init_srf(fcinfo)	SetSingleFuncCall((fcinfo), 0)
#endif

/*
 * Memory for a GUC check hook's extra: plain malloc() until 16, which frees
 * it with its own guc_free() and wants guc_malloc().
 */
#if PG_VERSION_NUM >= 160000
#define walvault_guc_malloc(size)	guc_malloc(LOG, (size))
#else
#define walvault_guc_malloc(size)	malloc(size)
#endif

/*
 * The number of this process's PGPROC, by which other processes find its
 * latch.  17 replaced PGPROC.pgprocno by MyProcNumber.
 */
static inline int
walvault_my_procno(void)
{
#if PG_VERSION_NUM >= 170000
	return (int) MyProcNumber;
#else
	return MyProc->pgprocno;
#endif
}

/* The latch of the process whose PGPROC number is procno. */
static inline Latch *
walvault_proc_latch(int procno)
{
	return &GetPGProcByNumber(procno)->procLatch;
}

/*
 * Wait event for pg_stat_activity: from 17 on, a wait event of our own,
 * registered under name (the server keeps one number per name); before,
 * the server's own event given as fallback.
 */
static inline uint32
walvault_wait_event_info(const char *name, uint32 fallback)
{
#if PG_VERSION_NUM >= 170000
	return WaitEventExtensionNew(name);
#else
	return fallback;
#endif
}

/*
 * A named point where a test can hold a process (the injection_points test
 * module), to test a race deterministically: 17 added them, 18 added an
 * argument.  A no-op in servers built without --enable-injection-points.
 */
#if PG_VERSION_NUM >= 180000
#include "utils/injection_point.h"
#define walvault_injection_point(name)	INJECTION_POINT(name, NULL)
#elif PG_VERSION_NUM >= 170000
#include "utils/injection_point.h"
#define walvault_injection_point(name)	INJECTION_POINT(name)
#else
#define walvault_injection_point(name)	((void) (name))
#endif

/* Checkpoints done so far: 17 moved them to pg_stat_checkpointer. */
static inline uint64
walvault_checkpoint_count(const PgStat_CheckpointerStats *cp)
{
#if PG_VERSION_NUM >= 170000
	return (uint64) (cp->num_timed + cp->num_requested);
#else
	return (uint64) (cp->timed_checkpoints + cp->requested_checkpoints);
#endif
}

/*
 * pg_stat_wal's records and full-page images: 18 moved the counters into
 * wal_counters (and the I/O columns to pg_stat_io, which we do not read).
 */
static inline void
walvault_wal_counts(const PgStat_WalStats *wal, uint64 *records, uint64 *fpi)
{
#if PG_VERSION_NUM >= 180000
	*records = (uint64) wal->wal_counters.wal_records;
	*fpi = (uint64) wal->wal_counters.wal_fpi;
#else
	*records = (uint64) wal->wal_records;
	*fpi = (uint64) wal->wal_fpi;
#endif
}

/*
 * Is this process a background worker (one of our archive workers, as
 * opposed to the server's archiver)?  17 replaced the flag by the
 * process's backend type.
 */
static inline bool
walvault_am_background_worker(void)
{
#if PG_VERSION_NUM >= 170000
	return AmBackgroundWorkerProcess();
#else
	return IsBackgroundWorker;
#endif
}

#endif							/* WALVAULT_COMPAT_H */

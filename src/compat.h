/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every PostgreSQL-version-specific API pg_walvault uses, in one place.
 *
 * pg_walvault is written against PostgreSQL 15.  The archive module API
 * changed in 16 (callbacks take an ArchiveModuleState, the init function
 * returns a const struct, the header moved), the set-returning-function
 * helper was renamed, and GUC memory got its own allocator.  The rest of the
 * code uses only the names defined here, so porting means editing this file
 * alone.
 *
 * src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_COMPAT_H
#define WALVAULT_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "pg_walvault requires PostgreSQL 15 or later"
#endif

#if PG_VERSION_NUM >= 160000
#include "archive/archive_module.h"

/* Parameter list of our callbacks; 16 adds the module state. */
#define WALVAULT_ARCHIVE_STATE_PARAM	ArchiveModuleState *state
#define WALVAULT_ARCHIVE_STATE_COMMA	ArchiveModuleState *state,
#define WALVAULT_ARCHIVE_MODULE_INIT_DECL \
	const ArchiveModuleCallbacks *_PG_archive_module_init(void)

#define walvault_init_srf(fcinfo)	InitMaterializedSRF((fcinfo), 0)
#else
#include "postmaster/pgarch.h"

#define WALVAULT_ARCHIVE_STATE_PARAM	void
#define WALVAULT_ARCHIVE_STATE_COMMA
#define WALVAULT_ARCHIVE_MODULE_INIT_DECL \
	void _PG_archive_module_init(ArchiveModuleCallbacks *cb)

#define walvault_init_srf(fcinfo)	SetSingleFuncCall((fcinfo), 0)
#endif

/* Checkpoints done so far, from the checkpointer's statistics (17 renamed them). */
#if PG_VERSION_NUM >= 170000
#define walvault_checkpoint_count(cp) \
	((uint64) ((cp)->num_timed + (cp)->num_requested))
#else
#define walvault_checkpoint_count(cp) \
	((uint64) ((cp)->timed_checkpoints + (cp)->requested_checkpoints))
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

#endif							/* WALVAULT_COMPAT_H */

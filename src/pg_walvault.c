/*-------------------------------------------------------------------------
 *
 * pg_walvault.c
 *	  Entry point of the library: _PG_init.
 *
 * The library is loaded in two ways, and behaves accordingly:
 *
 * - through shared_preload_libraries (the supported setup): the GUCs are
 *	 defined, the fixed shared memory block is requested, and the
 *	 coordinator is registered as a static background worker.  The
 *	 coordinator then creates the DSM segment and the pool of archive
 *	 workers; the archiver, which loads the same library as archive_library,
 *	 hands files to that pool.
 *
 * - only as archive_library: the archiver loads it on its own.  There is no
 *	 shared memory and no pool; the archive module archives every file itself
 *	 (see archive_module.c), and says once that parallel workers need
 *	 shared_preload_libraries.
 *
 * src/pg_walvault.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "compat.h"
#include "pg_walvault.h"

WALVAULT_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void pgwv_shmem_request(void);
static void pgwv_shmem_startup(void);

void
_PG_init(void)
{
	walvault_define_gucs();

	if (!process_shared_preload_libraries_in_progress)
		return;

	walvault_preloaded = true;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pgwv_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pgwv_shmem_startup;

	walvault_register_coordinator();
}

static void
pgwv_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	walvault_shmem_request();
}

static void
pgwv_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	walvault_shmem_startup();
}

/*-------------------------------------------------------------------------
 *
 * wait_events.c
 *	  What our processes wait for, as pg_stat_activity shows it.
 *
 * From PostgreSQL 17 on, an extension names its own wait events: a DBA who
 * sees the archiver stuck on "WalvaultWaitWorker" knows it waits for an
 * archive worker, and a worker on "WalvaultArchiveCommand" that the
 * command is running.  The server gives each name a number in shared
 * memory the first time any process asks, and the same number to every
 * process after that; we ask once per process and event.  Before 17 the
 * closest event of the server's own is shown (compat.h).
 *
 * src/wait_events.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "compat.h"
#include "pg_walvault.h"

typedef struct WaitEventName
{
	const char *name;			/* ours, from 17 on */
	uint32		fallback;		/* the server's, before 17 */
} WaitEventName;

static const WaitEventName wev_names[WALVAULT_WAIT_COUNT] = {
	[WALVAULT_WAIT_WORKER] = {"WalvaultWaitWorker", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_IDLE] = {"WalvaultWorkerIdle", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_COPY] = {"WalvaultCopy", WAIT_EVENT_COPY_FILE_WRITE},
	[WALVAULT_WAIT_COMPRESS] = {"WalvaultCompress", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_COMPARE] = {"WalvaultCompare", WAIT_EVENT_COPY_FILE_READ},
	[WALVAULT_WAIT_SYNC] = {"WalvaultSync", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_COMMAND] = {"WalvaultArchiveCommand", WAIT_EVENT_ARCHIVE_COMMAND},
	[WALVAULT_WAIT_UPLOAD] = {"WalvaultUpload", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_STORE_READ] = {"WalvaultStoreRead", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_COORDINATOR] = {"WalvaultCoordinatorMain", PG_WAIT_EXTENSION},
	[WALVAULT_WAIT_COLLECTOR] = {"WalvaultCollectorMain", PG_WAIT_EXTENSION},
};

/* Numbers this process was given, 0 until asked. */
static uint32 wev_info[WALVAULT_WAIT_COUNT];

uint32
walvault_wait_event(WalvaultWaitEvent event)
{
	Assert(event >= 0 && event < WALVAULT_WAIT_COUNT);
	if (wev_info[event] == 0)
		wev_info[event] = walvault_wait_event_info(wev_names[event].name,
												   wev_names[event].fallback);
	return wev_info[event];
}

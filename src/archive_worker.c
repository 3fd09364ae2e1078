/*-------------------------------------------------------------------------
 *
 * archive_worker.c
 *	  An archive worker: a dynamic background worker started by the
 *	  coordinator, archiving files from the queue in the DSM segment.
 *
 * Each worker owns one slot (its worker_id).  Its loop takes the next
 * queued files, up to pg_walvault.batch_size of them (the one the archiver
 * waits for first, then the oldest; queue.c leaves a file for every other
 * idle worker), lets the target archive them together where it can share
 * work between them (an archive directory: one fsync of the directory for
 * all), archives each with the same code the archiver would use, and
 * records each result in the queue (queue.c), which wakes the archiver if
 * it waits for that file.  With nothing to do it sleeps on its own latch,
 * which is set when files are queued for it.
 *
 * A worker leaves when the coordinator asks (the pool shrank), when it has
 * been idle for pg_walvault.worker_idle_timeout and the pool is above
 * pg_walvault.min_workers, or at shutdown (SIGTERM).  It always finishes the
 * files it took first: that is bounded by pg_walvault.batch_size copies,
 * and a half-written archive file would only be thrown away.  If it exits on
 * an error instead, its exit callback puts its files back into the queue and
 * the coordinator starts a new worker.
 *
 * src/archive_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "pg_walvault.h"

static WalvaultDsm *aw_dsm = NULL;
static int	aw_slotno = -1;

static void aw_on_exit(int code, Datum arg);
static void aw_reload(void);
static bool aw_should_stop(void);
static bool aw_retire(void);

void
walvault_archive_worker_main(Datum main_arg)
{
	uint32		generation;
	WalvaultSlot *slot;
	TimestampTz idle_since;

	aw_slotno = DatumGetInt32(main_arg);
	memcpy(&generation, MyBgworkerEntry->bgw_extra, sizeof(generation));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* no database: this only gives us a pg_stat_activity entry */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	aw_dsm = walvault_dsm_attach();
	if (aw_dsm == NULL || aw_slotno < WALVAULT_SLOT_FIRST_WORKER ||
		aw_slotno >= aw_dsm->nslots)
		proc_exit(0);
	slot = walvault_slot_claim(aw_dsm, aw_slotno, WALVAULT_ROLE_WORKER,
							   generation);
	if (slot == NULL)
	{
		/* the coordinator gave our slot away while we were starting */
		proc_exit(0);
	}
	before_shmem_exit(aw_on_exit, (Datum) 0);
	pgstat_report_activity(STATE_IDLE, "");

	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		WalvaultFileName fnames[WALVAULT_MAX_BATCH];
		int			nfiles;
		long		idle_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			aw_reload();
		if (ShutdownRequestPending || aw_should_stop())
			break;

		nfiles = walvault_queue_take(aw_dsm, aw_slotno, fnames,
									 walvault_archive_batch_max());
		if (nfiles > 0)
		{
			uint32		target_hash = walvault_target_hash();

			walvault_archive_stage(fnames, nfiles, slot);
			for (int i = 0; i < nfiles; i++)
			{
				char		path[MAXPGPATH];
				bool		ok;

				CHECK_FOR_INTERRUPTS();
				snprintf(path, sizeof(path), XLOGDIR "/%s", fnames[i]);
				ok = walvault_archive_file_guarded(fnames[i], path, slot);
				walvault_queue_finish(aw_dsm, aw_slotno, fnames[i], ok,
									  target_hash);
			}
			idle_since = GetCurrentTimestamp();
			continue;
		}

		idle_ms = walvault_worker_idle_timeout -
			TimestampDifferenceMilliseconds(idle_since, GetCurrentTimestamp());
		if (idle_ms <= 0)
		{
			if (aw_retire())
				break;
			idle_since = GetCurrentTimestamp();
			idle_ms = walvault_worker_idle_timeout;
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 idle_ms,
						 walvault_wait_event(WALVAULT_WAIT_IDLE));
		ResetLatch(MyLatch);
	}

	proc_exit(0);
}

/*
 * Exit callback: drop a half-written temporary file, give the slot back
 * (which requeues our file), and count an exit on error as a restart.
 */
static void
aw_on_exit(int code, Datum arg)
{
	walvault_target_abort();
	if (aw_dsm != NULL)
		walvault_slot_release(aw_dsm, aw_slotno, code != 0);
}

/*
 * Reload the configuration.  If it sends files elsewhere now, files we or
 * another worker archived ahead into the previous place are archived again
 * (queue.c explains why this is done here and not by the archiver).
 */
static void
aw_reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	walvault_queue_retarget(aw_dsm, walvault_target_hash());
}

static bool
aw_should_stop(void)
{
	bool		stop;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	stop = aw_dsm->slots[aw_slotno].stop_requested;
	LWLockRelease(walvault_shared->lock);
	return stop;
}

/*
 * Idle for worker_idle_timeout: leave if the pool stays at or above
 * min_workers without us.  Decided under the lock so that idle workers
 * timing out together never take the pool below the minimum.
 */
static bool
aw_retire(void)
{
	WalvaultCensus census;
	bool		retire;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_census(aw_dsm, &census);
	retire = census.live >
		walvault_effective_min_workers(walvault_worker_slots(aw_dsm));
	if (retire)
		aw_dsm->slots[aw_slotno].stop_requested = true;
	LWLockRelease(walvault_shared->lock);
	return retire;
}

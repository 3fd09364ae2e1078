/*-------------------------------------------------------------------------
 *
 * archiver.c
 *	  The archive_library callbacks: run by the server's archiver process,
 *	  they hand files to the archive workers and wait for them.
 *
 * The server's archiver calls archive_file_cb for one file at a time, oldest
 * first, and marks the file done when the callback returns true.  We make
 * that serial loop parallel without changing what it is told:
 *
 * 1. The requested file goes into the queue in the DSM segment, flagged as
 *	  the one the archiver waits for, so that the next free worker takes it
 *	  first.
 * 2. Read-ahead: when fewer than half of pg_walvault.readahead files are in
 *	  flight, we scan pg_wal/archive_status the way the server does
 *	  (timeline history files first, then oldest first) and queue the next
 *	  ready files.  When the archiver asks for one of them later it is
 *	  usually durable already, and we return true at once.
 * 3. We set the latches of idle workers (and the coordinator's, when the
 *	  queue outgrows the idle workers) and sleep on our own latch, which the
 *	  worker sets when the file is durable or has failed.
 * 4. Once the requested file is durable, we mark the files archived ahead
 *	  done ourselves, in one batch (pg_walvault.mark_done_ahead): the server
 *	  skips a file whose .ready is gone, so it does not ask for them, and
 *	  its own marking (three fsyncs per file, in this one process) no longer
 *	  sets the pace of a drain of small files.  The newest of them is left
 *	  for the server to ask for, so that pg_stat_archiver's last_archived_wal
 *	  names it once the backlog is drained.
 *
 * Fallback: when no worker can take the file, the archiver archives it
 * itself with the same code (archive_file.c).  That is the case when the
 * library was not preloaded (no shared memory), before the coordinator has
 * created the DSM segment, with pg_walvault.max_workers = 0, when no
 * background worker slot is free, and at shutdown: the postmaster stops all
 * background workers before the server's last archive cycle.
 *
 * Every wait is bounded: we wake at least once a second to see whether the
 * workers we wait for still exist, and exit with the postmaster.  While we
 * wait we absorb interrupts (a procsignal barrier, which DROP DATABASE
 * waits for, must not wait for a slow worker).
 *
 * Errors: archive_file.c traps the errors of archiving itself; an error
 * anywhere else in the callback (the queue, shared memory) is trapped here,
 * so that on every server version it is logged, counted in our views and
 * reported as a failure of this file: before 17 an error escaping the
 * callback would kill the archiver, and 17's own trap would not count it
 * in our views.
 *
 * src/archiver.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "compat.h"
#include "pg_walvault.h"

/* How often a wait for a worker checks that workers still exist. */
#define AM_RECHECK_MS			1000
/* How long a queued file may wait for a first worker before we take it. */
#define AM_NO_WORKER_WAIT_MS	10000

/* What the wait for a queued file found */
typedef enum AmPoll
{
	AM_POLL_WAIT,				/* a worker has it, or will */
	AM_POLL_DONE,				/* durable in the archive */
	AM_POLL_FAILED,				/* the worker failed */
	AM_POLL_TAKE_OVER			/* no worker will: archive it ourselves */
} AmPoll;

static WalvaultSlot *am_slot = NULL;	/* the archiver's slot, once attached */
static bool am_last_failed = false; /* did the last requested file fail? */
static bool am_fallback_logged = false; /* said that we archive ourselves? */
static MemoryContext am_context = NULL;

static void am_init(void);
static bool am_check_configured(WALVAULT_ARCHIVE_STATE_PARAM);
static bool am_archive_file(WALVAULT_ARCHIVE_STATE_COMMA const char *file,
							const char *path);
static bool am_archive(const char *file, const char *path);
static void am_on_exit(int code, Datum arg);
static bool am_archive_via_pool(WalvaultDsm *dsm, const char *file,
								const char *path);
static bool am_wait_for(WalvaultDsm *dsm, WalvaultQueueEntry *e,
						const char *file, const char *path);
static AmPoll am_poll(WalvaultDsm *dsm, WalvaultQueueEntry *e,
					  TimestampTz waiting_since);
static bool am_pool_available(WalvaultDsm *dsm, bool *workers_exist);
static void am_readahead(WalvaultDsm *dsm, const char *file);
static void am_mark_done_ahead(WalvaultDsm *dsm);
static bool am_archive_self(const char *file, const char *path);

WALVAULT_DEFINE_ARCHIVE_MODULE(am_init, am_check_configured, am_archive_file)

/* _PG_archive_module_init(): the archiver loads us. */
static void
am_init(void)
{
	if (!walvault_preloaded)
	{
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_walvault is archiving without parallel workers"),
				 errdetail("pg_walvault is set as archive_library but is not in shared_preload_libraries, so the archiver archives every file itself."),
				 errhint("Add pg_walvault to shared_preload_libraries and restart the server to archive in parallel.")));
		walvault_check_target(WARNING);
	}

	am_context = AllocSetContextCreate(TopMemoryContext,
									   "pg_walvault archive module",
									   ALLOCSET_DEFAULT_SIZES);
}

/*
 * Archiving is configured once files have somewhere to go.  Several places
 * set counts as configured: every file then fails with an error saying so,
 * counted and shown in the views.
 */
static bool
am_check_configured(WALVAULT_ARCHIVE_STATE_PARAM)
{
	int			nset;

	(void) walvault_archive_target(&nset);
	if (nset > 0)
		return true;
	walvault_not_configured_detail("None of pg_walvault.archive_directory, pg_walvault.archive_command and pg_walvault.archive_url is set.");
	return false;
}

/* archive_file_cb: archive file, trapping any error (see the header). */
static bool
am_archive_file(WALVAULT_ARCHIVE_STATE_COMMA const char *file, const char *path)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(am_context);
	volatile bool ok = false;

	PG_TRY();
	{
		ok = am_archive(file, path);
	}
	PG_CATCH();
	{
		walvault_trap_error(am_slot, file, am_context);
		walvault_slot_set_state(am_slot, WALVAULT_SLOT_IDLE, NULL);
	}
	PG_END_TRY();

	am_last_failed = !ok;
	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(am_context);
	return ok;
}

static bool
am_archive(const char *file, const char *path)
{
	WalvaultDsm *dsm = walvault_dsm_attach();

	if (dsm != NULL && am_slot == NULL)
	{
		am_slot = walvault_slot_claim(dsm, WALVAULT_SLOT_ARCHIVER,
									  WALVAULT_ROLE_ARCHIVER, 0);
		before_shmem_exit(am_on_exit, (Datum) 0);
	}

	if (dsm != NULL)
		return am_archive_via_pool(dsm, file, path);
	if (walvault_preloaded)
		return am_archive_self(file, path);
	/* not preloaded: we archive every file ourselves, as am_init() said */
	return walvault_archive_file_guarded(file, path, am_slot);
}

static void
am_on_exit(int code, Datum arg)
{
	WalvaultDsm *dsm = walvault_dsm_attach();

	if (dsm != NULL && am_slot != NULL)
		walvault_slot_release(dsm, WALVAULT_SLOT_ARCHIVER, false);
	am_slot = NULL;
}

/*
 * Archive file through the pool, or by ourselves if no worker can take it.
 */
static bool
am_archive_via_pool(WalvaultDsm *dsm, const char *file, const char *path)
{
	WalvaultQueueEntry *e;

	switch (walvault_queue_request(dsm, file, &e))
	{
		case WALVAULT_REQUEST_DONE:
			/* archived ahead: keep the workers fed while we catch up */
			am_mark_done_ahead(dsm);
			am_readahead(dsm, file);
			walvault_queue_wake(dsm);
			return true;
		case WALVAULT_REQUEST_FULL:
			/* the queue is full of files nobody asked for yet */
			return am_archive_self(file, path);
		case WALVAULT_REQUEST_QUEUED:
			break;
	}

	/* Don't read ahead into a place that just failed us. */
	if (!am_last_failed)
		am_readahead(dsm, file);
	walvault_queue_wake(dsm);
	if (!am_wait_for(dsm, e, file, path))
		return false;
	am_mark_done_ahead(dsm);
	return true;
}

/*
 * Wait until a worker has archived the queued entry e, or take it over when
 * no worker will.
 */
static bool
am_wait_for(WalvaultDsm *dsm, WalvaultQueueEntry *e, const char *file,
			const char *path)
{
	TimestampTz waiting_since = GetCurrentTimestamp();
	bool		latch_reset = false;
	bool		ok = false;
	bool		waiting = true;

	walvault_slot_set_state(am_slot, WALVAULT_SLOT_BUSY, file);
	while (waiting)
	{
		switch (am_poll(dsm, e, waiting_since))
		{
			case AM_POLL_DONE:
				ok = true;
				waiting = false;
				break;
			case AM_POLL_FAILED:
				waiting = false;
				break;
			case AM_POLL_TAKE_OVER:
				ok = am_archive_self(file, path);
				LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
				walvault_queue_free(e);
				LWLockRelease(walvault_shared->lock);
				waiting = false;
				break;
			case AM_POLL_WAIT:
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 AM_RECHECK_MS,
								 walvault_wait_event(WALVAULT_WAIT_WORKER));
				ResetLatch(MyLatch);
				latch_reset = true;
				CHECK_FOR_INTERRUPTS();
				break;
		}
	}
	walvault_slot_set_state(am_slot, WALVAULT_SLOT_IDLE, NULL);

	/*
	 * Our waits may have consumed a wakeup meant for the archiver's own loop
	 * (a backend announcing a new ready file).  Give it back; at worst the
	 * archiver scans its directory once more.
	 */
	if (latch_reset)
		SetLatch(MyLatch);
	return ok;
}

/*
 * Where is the entry we wait for?  A finished entry is freed; a queued one
 * that no worker will take is claimed for us.
 */
static AmPoll
am_poll(WalvaultDsm *dsm, WalvaultQueueEntry *e, TimestampTz waiting_since)
{
	AmPoll		result = AM_POLL_WAIT;
	bool		workers_exist;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	switch (e->status)
	{
		case WALVAULT_ENTRY_DONE:
		case WALVAULT_ENTRY_FAILED:
			result = (e->status == WALVAULT_ENTRY_DONE) ?
				AM_POLL_DONE : AM_POLL_FAILED;
			am_fallback_logged = false; /* workers are back */
			walvault_queue_free(e);
			break;
		case WALVAULT_ENTRY_QUEUED:
			if (!am_pool_available(dsm, &workers_exist) ||
				(!workers_exist &&
				 TimestampDifferenceExceeds(waiting_since, GetCurrentTimestamp(),
											AM_NO_WORKER_WAIT_MS)))
			{
				e->status = WALVAULT_ENTRY_IN_PROGRESS;
				e->slot = WALVAULT_SLOT_ARCHIVER;
				result = AM_POLL_TAKE_OVER;
			}
			break;
		case WALVAULT_ENTRY_IN_PROGRESS:
		case WALVAULT_ENTRY_FREE:
			break;
	}
	LWLockRelease(walvault_shared->lock);
	return result;
}

/*
 * Archive file in this process: no worker can.  Said once in the log each
 * time it starts happening, so that a DBA sees why archiving is serial.
 */
static bool
am_archive_self(const char *file, const char *path)
{
	if (!am_fallback_logged)
		ereport(LOG,
				(errmsg("pg_walvault: no archive worker is available, the archiver archives files itself"),
				 errdetail("This happens at shutdown, before the workers have started, with pg_walvault.max_workers = 0, and when no background worker can be started.")));
	am_fallback_logged = true;
	return walvault_archive_file_guarded(file, path, am_slot);
}

/*
 * Can a worker be expected to take a queued file?  *workers_exist tells
 * whether one is running already (rather than being started).  Under lock.
 */
static bool
am_pool_available(WalvaultDsm *dsm, bool *workers_exist)
{
	WalvaultCensus census;

	*workers_exist = false;
	if (walvault_max_workers == 0)
		return false;
	walvault_census(dsm, &census);
	*workers_exist = census.live > census.starting;
	if (*workers_exist)
		return true;

	/*
	 * None runs yet: only worth waiting if the coordinator is there to start
	 * one.  At shutdown it is gone, and workers it registered will never be
	 * started by the postmaster.
	 */
	return walvault_shared->coordinator_pgprocno >= 0 &&
		(census.starting > 0 || !walvault_shared->spawn_failed);
}

/*
 * Queue the next ready files after file, as the server will ask for them,
 * so that workers archive them while the archiver waits.  Only once half of
 * the window is free: listing archive_status is not free.
 */
static void
am_readahead(WalvaultDsm *dsm, const char *file)
{
	WalvaultCensus census;
	WalvaultFileName *ready;
	int			nready;

	if (walvault_readahead <= 0)
		return;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	walvault_census(dsm, &census);
	LWLockRelease(walvault_shared->lock);
	if (census.queued + census.in_progress > walvault_readahead / 2)
		return;

	ready = walvault_ready_files(&nready);
	(void) walvault_queue_readahead(dsm, ready, nready, file,
									walvault_readahead);
	pfree(ready);
}

/*
 * Mark the files the workers have archived ahead done, so that the server
 * skips them (see the header, step 4).  Only entries archived into where
 * files go now: after a reload the coordinator queues the others again.
 */
static void
am_mark_done_ahead(WalvaultDsm *dsm)
{
	WalvaultFileName *done;
	int			ndone;

	if (!walvault_mark_done_ahead)
		return;
	done = palloc(sizeof(WalvaultFileName) * dsm->queue_size);
	ndone = walvault_queue_take_done(dsm, walvault_target_hash(), done,
									 dsm->queue_size);
	if (ndone > 0)
		(void) walvault_mark_done(done, ndone);
	pfree(done);
}

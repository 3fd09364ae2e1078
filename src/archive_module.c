/*-------------------------------------------------------------------------
 *
 * archive_module.c
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
 *
 * Fallback: when no worker can take the file, the archiver archives it
 * itself with the same code (archive_file.c).  That is the case when the
 * library was not preloaded (no shared memory), before the coordinator has
 * created the DSM segment, with pg_walvault.max_workers = 0, when no
 * background worker slot is free, and at shutdown: the postmaster stops all
 * background workers before the server's last archive cycle.
 *
 * Every wait is bounded: we wake at least once a second to see whether the
 * workers we wait for still exist, and exit with the postmaster.
 *
 * src/archive_module.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_walvault.h"

/* How often a wait for a worker checks that workers still exist. */
#define AM_RECHECK_MS			1000
/* How long a queued file may wait for a first worker before we take it. */
#define AM_NO_WORKER_WAIT_MS	10000

static WalvaultSlot *am_slot = NULL;	/* the archiver's slot, once attached */
static bool am_last_failed = false; /* did the last requested file fail? */
static bool am_fallback_logged = false; /* said that we archive ourselves? */
static MemoryContext am_context = NULL;

static void am_init(void);
static bool am_check_configured(WALVAULT_ARCHIVE_STATE_PARAM);
static bool am_archive_file(WALVAULT_ARCHIVE_STATE_COMMA const char *file,
							const char *path);
static void am_on_exit(int code, Datum arg);
static bool am_archive_via_pool(WalvaultDsm *dsm, const char *file,
								const char *path);
static WalvaultQueueEntry *am_find(WalvaultDsm *dsm, const char *file);
static WalvaultQueueEntry *am_alloc(WalvaultDsm *dsm, const char *file);
static void am_free(WalvaultQueueEntry *e);
static bool am_pool_available(WalvaultDsm *dsm, bool *workers_exist);
static void am_wake_pool(WalvaultDsm *dsm);
static void am_readahead(WalvaultDsm *dsm, const char *file);
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
 * Archiving is configured once files have somewhere to go.  Both places set
 * counts as configured: every file then fails with an error saying so,
 * counted and shown in the views.
 */
static bool
am_check_configured(WALVAULT_ARCHIVE_STATE_PARAM)
{
	if (walvault_archive_target() != WALVAULT_TARGET_NONE)
		return true;
	walvault_not_configured_detail("Neither pg_walvault.archive_directory nor pg_walvault.archive_command is set.");
	return false;
}

static bool
am_archive_file(WALVAULT_ARCHIVE_STATE_COMMA const char *file, const char *path)
{
	WalvaultDsm *dsm = walvault_dsm_attach();
	bool		ok;

	if (dsm != NULL && am_slot == NULL)
	{
		am_slot = walvault_slot_claim(dsm, WALVAULT_SLOT_ARCHIVER,
									  WALVAULT_ROLE_ARCHIVER, 0);
		before_shmem_exit(am_on_exit, (Datum) 0);
	}

	if (dsm == NULL)
		ok = walvault_preloaded ? am_archive_self(file, path) :
			walvault_archive_file_guarded(file, path, am_slot);
	else
		ok = am_archive_via_pool(dsm, file, path);

	am_last_failed = !ok;
	MemoryContextReset(am_context);
	return ok;
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
	uint32		target_hash = walvault_target_hash();
	WalvaultQueueEntry *e;
	TimestampTz waiting_since = GetCurrentTimestamp();
	bool		latch_reset = false;
	bool		ok = false;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	e = am_find(dsm, file);
	if (e != NULL && e->status == WALVAULT_ENTRY_DONE &&
		e->target_hash == target_hash)
	{
		/* archived ahead; keep the workers fed while the archiver catches up */
		am_free(e);
		LWLockRelease(walvault_shared->lock);
		am_readahead(dsm, file);
		am_wake_pool(dsm);
		return true;
	}
	if (e == NULL)
		e = am_alloc(dsm, file);
	else if (e->status != WALVAULT_ENTRY_IN_PROGRESS)
	{
		/* failed, or archived into a directory we no longer use: again */
		e->status = WALVAULT_ENTRY_QUEUED;
	}
	if (e != NULL)
		e->requested = true;
	LWLockRelease(walvault_shared->lock);

	if (e == NULL)
	{
		/* the queue is full of files nobody asked for yet: do it ourselves */
		return am_archive_self(file, path);
	}

	/* Don't read ahead into a directory that just failed us. */
	if (!am_last_failed)
		am_readahead(dsm, file);
	am_wake_pool(dsm);

	walvault_slot_set_state(am_slot, WALVAULT_SLOT_BUSY, file);
	for (;;)
	{
		WalvaultEntryStatus status;
		bool		workers_exist;
		bool		take_over = false;

		LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
		Assert(strcmp(e->fname, file) == 0);
		status = e->status;
		if (status == WALVAULT_ENTRY_DONE && e->target_hash != target_hash)
		{
			/* where files go changed while a worker was at it */
			e->status = status = WALVAULT_ENTRY_QUEUED;
		}
		if (status == WALVAULT_ENTRY_DONE || status == WALVAULT_ENTRY_FAILED)
		{
			ok = (status == WALVAULT_ENTRY_DONE);
			am_fallback_logged = false; /* workers are back */
			am_free(e);
			LWLockRelease(walvault_shared->lock);
			break;
		}
		if (status == WALVAULT_ENTRY_QUEUED &&
			(!am_pool_available(dsm, &workers_exist) ||
			 (!workers_exist &&
			  TimestampDifferenceExceeds(waiting_since, GetCurrentTimestamp(),
										 AM_NO_WORKER_WAIT_MS))))
		{
			e->status = WALVAULT_ENTRY_IN_PROGRESS;
			e->slot = WALVAULT_SLOT_ARCHIVER;
			take_over = true;
		}
		LWLockRelease(walvault_shared->lock);

		if (take_over)
		{
			ok = am_archive_self(file, path);
			LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
			am_free(e);
			LWLockRelease(walvault_shared->lock);
			break;
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 AM_RECHECK_MS,
						 walvault_wait_event(WALVAULT_WAIT_WORKER));
		ResetLatch(MyLatch);
		latch_reset = true;
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

/* Entry for file, or NULL.  Caller holds the lock. */
static WalvaultQueueEntry *
am_find(WalvaultDsm *dsm, const char *file)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	int			i;

	for (i = 0; i < dsm->queue_size; i++)
	{
		if (queue[i].status != WALVAULT_ENTRY_FREE &&
			strcmp(queue[i].fname, file) == 0)
			return &queue[i];
	}
	return NULL;
}

/* A new QUEUED entry for file, or NULL if the queue is full.  Under lock. */
static WalvaultQueueEntry *
am_alloc(WalvaultDsm *dsm, const char *file)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	int			i;

	for (i = 0; i < dsm->queue_size; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if (e->status == WALVAULT_ENTRY_FREE)
		{
			strlcpy(e->fname, file, WALVAULT_FNAME_LEN);
			e->status = WALVAULT_ENTRY_QUEUED;
			e->requested = false;
			e->slot = -1;
			e->target_hash = 0;
			e->seq = dsm->next_seq++;
			return e;
		}
	}
	return NULL;
}

static void
am_free(WalvaultQueueEntry *e)
{
	e->status = WALVAULT_ENTRY_FREE;
	e->requested = false;
	e->slot = -1;
	e->fname[0] = '\0';
}

/*
 * Can a worker be expected to take a queued file?  *workers_exist tells
 * whether one is running already (rather than being started).  Under lock.
 */
static bool
am_pool_available(WalvaultDsm *dsm, bool *workers_exist)
{
	int			starting = 0;
	int			running = 0;
	int			i;

	*workers_exist = false;
	if (walvault_max_workers == 0)
		return false;
	for (i = WALVAULT_SLOT_FIRST_WORKER; i < dsm->nslots; i++)
	{
		WalvaultSlot *slot = &dsm->slots[i];

		if (slot->stop_requested)
			continue;
		if (slot->state == WALVAULT_SLOT_STARTING)
			starting++;
		else if (slot->state != WALVAULT_SLOT_FREE)
			running++;
	}
	*workers_exist = running > 0;
	if (running > 0)
		return true;

	/*
	 * None runs yet: only worth waiting if the coordinator is there to start
	 * one.  At shutdown it is gone, and workers it registered will never be
	 * started by the postmaster.
	 */
	return walvault_shared->coordinator_pgprocno >= 0 &&
		(starting > 0 || !walvault_shared->spawn_failed);
}

/*
 * Wake as many idle workers as there are queued files, and the coordinator
 * if that is not enough.
 */
static void
am_wake_pool(WalvaultDsm *dsm)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	int			wake[WALVAULT_MAX_WORKERS];
	int			nwake = 0;
	int			queued = 0;
	int			live = 0;
	int			coordinator = -1;
	int			i;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	for (i = 0; i < dsm->queue_size; i++)
		if (queue[i].status == WALVAULT_ENTRY_QUEUED)
			queued++;
	for (i = WALVAULT_SLOT_FIRST_WORKER; i < dsm->nslots; i++)
	{
		WalvaultSlot *slot = &dsm->slots[i];

		if (slot->state == WALVAULT_SLOT_FREE || slot->stop_requested)
			continue;
		live++;
		if (slot->state == WALVAULT_SLOT_IDLE && nwake < queued)
			wake[nwake++] = slot->pgprocno;
	}
	if (queued > nwake && live < walvault_max_workers)
		coordinator = walvault_shared->coordinator_pgprocno;
	LWLockRelease(walvault_shared->lock);

	for (i = 0; i < nwake; i++)
		walvault_set_latch(wake[i]);
	walvault_set_latch(coordinator);
}

/*
 * Queue the next ready files after file, as the server will ask for them,
 * so that workers archive them while the archiver waits.  Also drops queue
 * entries whose file is no longer ready (another archiver run finished
 * them).
 */
static void
am_readahead(WalvaultDsm *dsm, const char *file)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	MemoryContext oldcontext;
	char	  (*known)[WALVAULT_FNAME_LEN];
	int			nknown = 0;
	int			inflight = 0;
	char	  (*ready)[WALVAULT_FNAME_LEN];
	int			nready = 0;
	int			maxready = 256;
	DIR		   *dir;
	struct dirent *de;
	int			pass;
	int			i;

	if (walvault_readahead <= 0)
		return;

	oldcontext = MemoryContextSwitchTo(am_context);

	/* refill only once half of the window is free: a scan is not free */
	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	for (i = 0; i < dsm->queue_size; i++)
		if (queue[i].status == WALVAULT_ENTRY_QUEUED ||
			queue[i].status == WALVAULT_ENTRY_IN_PROGRESS)
			inflight++;
	LWLockRelease(walvault_shared->lock);
	if (inflight > walvault_readahead / 2)
	{
		MemoryContextSwitchTo(oldcontext);
		return;
	}

	/*
	 * Only this process adds or frees queue entries, so what we see now stays
	 * true until we insert below; workers only change their status.
	 */
	known = palloc(sizeof(*known) * dsm->queue_size);
	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	for (i = 0; i < dsm->queue_size; i++)
		if (queue[i].status != WALVAULT_ENTRY_FREE)
			strlcpy(known[nknown++], queue[i].fname, WALVAULT_FNAME_LEN);
	LWLockRelease(walvault_shared->lock);

	ready = palloc(sizeof(*ready) * maxready);
	dir = AllocateDir(XLOGDIR "/archive_status");
	while ((de = ReadDir(dir, XLOGDIR "/archive_status")) != NULL)
	{
		size_t		len = strlen(de->d_name);

		if (len <= 6 || len - 6 >= WALVAULT_FNAME_LEN ||
			strcmp(de->d_name + len - 6, ".ready") != 0)
			continue;
		if (nready == maxready)
		{
			maxready *= 2;
			ready = repalloc(ready, sizeof(*ready) * maxready);
		}
		memcpy(ready[nready], de->d_name, len - 6);
		ready[nready][len - 6] = '\0';
		if (walvault_is_archivable_name(ready[nready]))
			nready++;
	}
	FreeDir(dir);

	qsort(ready, nready, sizeof(*ready), walvault_name_cmp);
	qsort(known, nknown, sizeof(*known), walvault_name_cmp);

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);

	/* forget finished entries whose file is no longer ready */
	for (i = 0; i < dsm->queue_size; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if ((e->status == WALVAULT_ENTRY_DONE ||
			 e->status == WALVAULT_ENTRY_FAILED) && !e->requested &&
			strcmp(e->fname, file) != 0 &&
			bsearch(e->fname, ready, nready, sizeof(*ready), walvault_name_cmp) == NULL)
			am_free(e);
	}

	/*
	 * The server's order: timeline history files first (pass 0), then the
	 * rest, oldest first.
	 */
	for (pass = 0; pass < 2; pass++)
	{
		for (i = 0; i < nready && inflight < walvault_readahead; i++)
		{
			if (IsTLHistoryFileName(ready[i]) != (pass == 0) ||
				strcmp(ready[i], file) == 0 ||
				bsearch(ready[i], known, nknown, sizeof(*known), walvault_name_cmp) != NULL)
				continue;
			if (am_alloc(dsm, ready[i]) == NULL)
				break;
			inflight++;
		}
	}
	LWLockRelease(walvault_shared->lock);

	MemoryContextSwitchTo(oldcontext);
}

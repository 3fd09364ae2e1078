/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The queue of files handed from the archiver to the archive workers,
 *	  the census of the pool, and who wakes whom.
 *
 * The queue is an array of entries in the DSM segment (walvault_shmem.h),
 * under WalvaultShared->lock like everything else there.  An entry is one
 * file; its life:
 *
 *		FREE --add--> QUEUED --take--> IN_PROGRESS --finish--> DONE or FAILED
 *		  ^                                                        |
 *		  +-------------------- free (archiver) -------------------+
 *
 * and three ways back to QUEUED:
 *
 * - the worker archiving it exits (an error, a command killed by a signal)
 *	 before finishing: its exit callback requeues it (requeue_slot);
 * - where files go changed (a reload set another directory or command): a
 *	 DONE entry counts only for the place it went to, so every process that
 *	 reloads requeues the entries done elsewhere (retarget).  The archiver
 *	 never compares places itself: it cannot reload its configuration while
 *	 the server is inside the archive callback, so its idea of "where" may
 *	 be old, and waiting for a worker to match it would never end;
 * - the archiver asks for a file whose last attempt FAILED: it is queued
 *	 again (request).
 *
 * Only the archiver adds and frees entries (request, readahead); workers
 * take and finish them; so a name the archiver sees in the queue stays
 * there until the archiver itself frees it.
 *
 * Who wakes whom, always by setting the other process's latch, never while
 * holding the lock:
 *
 * - archiver -> idle workers, one per queued file (walvault_queue_wake),
 *	 and the coordinator when there are more queued files than idle workers
 *	 and the pool may grow;
 * - worker -> archiver, when it finishes the file the archiver waits for;
 * - exit callback of any of our processes -> the archiver (it may wait for
 *	 the file the process had), the coordinator (to keep the pool), and
 *	 idle workers, one per requeued file;
 * - a process that reloaded and requeued files -> idle workers, as above;
 * - postmaster -> coordinator, when a worker it started has started or
 *	 stopped (bgw_notify_pid);
 * - coordinator -> workers it asks to leave, and the archiver when no
 *	 worker can be started (so that it archives by itself).
 *
 * Every wait on a latch is bounded by a timeout after which the waiter
 * looks again, so that a wakeup lost to a process that died is only a
 * delay, never a hang.
 *
 * src/queue.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pg_walvault.h"
#include "wal_names.h"

static void queue_census_locked(WalvaultDsm *dsm, WalvaultCensus *census,
								int *idle_procnos);

/*
 * Count the queue and the pool.  Caller holds the lock.
 */
void
walvault_census(WalvaultDsm *dsm, WalvaultCensus *census)
{
	queue_census_locked(dsm, census, NULL);
}

/*
 * The census, and the PGPROC numbers of the idle workers if idle_procnos
 * is given (room for WALVAULT_MAX_WORKERS).
 */
static void
queue_census_locked(WalvaultDsm *dsm, WalvaultCensus *census,
					int *idle_procnos)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);

	memset(census, 0, sizeof(*census));
	for (int i = 0; i < dsm->queue_size; i++)
	{
		if (queue[i].status == WALVAULT_ENTRY_QUEUED)
			census->queued++;
		else if (queue[i].status == WALVAULT_ENTRY_IN_PROGRESS)
			census->in_progress++;
	}
	for (int i = WALVAULT_SLOT_FIRST_WORKER; i < dsm->nslots; i++)
	{
		WalvaultSlot *slot = &dsm->slots[i];

		if (slot->state == WALVAULT_SLOT_IDLE ||
			slot->state == WALVAULT_SLOT_BUSY)
			census->attached++;
		/* a worker asked to leave takes no new file */
		if (slot->state == WALVAULT_SLOT_FREE || slot->stop_requested)
			continue;
		census->live++;
		switch (slot->state)
		{
			case WALVAULT_SLOT_STARTING:
				census->starting++;
				break;
			case WALVAULT_SLOT_IDLE:
				if (idle_procnos != NULL)
					idle_procnos[census->idle] = slot->pgprocno;
				census->idle++;
				break;
			case WALVAULT_SLOT_BUSY:
				census->busy++;
				break;
			case WALVAULT_SLOT_FREE:
				break;
		}
	}
}

/* The entry for fname, or NULL.  Caller holds the lock. */
WalvaultQueueEntry *
walvault_queue_find(WalvaultDsm *dsm, const char *fname)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);

	for (int i = 0; i < dsm->queue_size; i++)
	{
		if (queue[i].status != WALVAULT_ENTRY_FREE &&
			strcmp(queue[i].fname, fname) == 0)
			return &queue[i];
	}
	return NULL;
}

/*
 * A new QUEUED entry for fname, or NULL if the queue is full.  Archiver
 * only; caller holds the lock.
 */
WalvaultQueueEntry *
walvault_queue_add(WalvaultDsm *dsm, const char *fname)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);

	for (int i = 0; i < dsm->queue_size; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if (e->status == WALVAULT_ENTRY_FREE)
		{
			strlcpy(e->fname, fname, WALVAULT_FNAME_LEN);
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

/* Forget an entry.  Archiver only; caller holds the lock. */
void
walvault_queue_free(WalvaultQueueEntry *e)
{
	e->status = WALVAULT_ENTRY_FREE;
	e->requested = false;
	e->slot = -1;
	e->fname[0] = '\0';
}

/*
 * The archiver asks for fname.  Under the lock: a file archived ahead (DONE)
 * is forgotten and WALVAULT_REQUEST_DONE returned; otherwise the file is
 * queued (again, if its last attempt failed), flagged as the one the
 * archiver waits for, and returned in *entry with WALVAULT_REQUEST_QUEUED;
 * WALVAULT_REQUEST_FULL if there is no room.
 */
WalvaultRequest
walvault_queue_request(WalvaultDsm *dsm, const char *fname,
					   WalvaultQueueEntry **entry)
{
	WalvaultQueueEntry *e;
	WalvaultRequest result = WALVAULT_REQUEST_QUEUED;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	e = walvault_queue_find(dsm, fname);
	if (e != NULL && e->status == WALVAULT_ENTRY_DONE)
	{
		walvault_queue_free(e);
		e = NULL;
		result = WALVAULT_REQUEST_DONE;
	}
	else if (e == NULL && (e = walvault_queue_add(dsm, fname)) == NULL)
		result = WALVAULT_REQUEST_FULL;
	else
	{
		if (e->status == WALVAULT_ENTRY_FAILED)
			e->status = WALVAULT_ENTRY_QUEUED;
		e->requested = true;
	}
	LWLockRelease(walvault_shared->lock);

	*entry = e;
	return result;
}

/*
 * Where the server's archiver puts name in its order: timeline history files
 * first, then by name (for WAL files, timeline and then position).
 */
static int
queue_server_order(const char *a, const char *b)
{
	bool		ha = walvault_classify_name(a) == WALVAULT_FILE_TL_HISTORY;
	bool		hb = walvault_classify_name(b) == WALVAULT_FILE_TL_HISTORY;

	if (ha != hb)
		return ha ? -1 : 1;
	return strcmp(a, b);
}

/*
 * Files archived ahead that the archiver may mark done itself: entries DONE
 * into the place target_hash stands for, that the archiver is not waiting
 * for, except the one the server would ask for last.  That one is left for
 * the server to ask for, so that pg_stat_archiver's last_archived_wal still
 * names the newest file once a backlog is drained.  The entries are
 * forgotten and their names copied into done[] (room for max); returns how
 * many.  Archiver only.
 */
int
walvault_queue_take_done(WalvaultDsm *dsm, uint32 target_hash,
						 WalvaultFileName *done, int max)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	WalvaultQueueEntry *last = NULL;
	int			n = 0;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < dsm->queue_size; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if (e->status == WALVAULT_ENTRY_DONE && !e->requested &&
			e->target_hash == target_hash &&
			(last == NULL || queue_server_order(e->fname, last->fname) > 0))
			last = e;
	}
	for (int i = 0; i < dsm->queue_size && n < max; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if (e != last && e->status == WALVAULT_ENTRY_DONE && !e->requested &&
			e->target_hash == target_hash)
		{
			strlcpy(done[n++], e->fname, WALVAULT_FNAME_LEN);
			walvault_queue_free(e);
		}
	}
	LWLockRelease(walvault_shared->lock);
	return n;
}

/*
 * A worker (slotno) takes the next queued files, up to max of them: first
 * the one the archiver waits for, then the oldest.  It takes more than one
 * only while that leaves a queued file for every other idle worker, so that
 * a few files are still archived in parallel.  Their names go into
 * fnames[]; returns how many (0 when nothing is queued).
 */
int
walvault_queue_take(WalvaultDsm *dsm, int slotno, WalvaultFileName *fnames,
					int max)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	WalvaultCensus census;
	int			others_idle;
	int			ntake;
	int			n = 0;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_census(dsm, &census);
	others_idle = census.idle -
		(dsm->slots[slotno].state == WALVAULT_SLOT_IDLE ? 1 : 0);
	ntake = Min(max, Max(1, census.queued - others_idle));
	while (n < ntake)
	{
		WalvaultQueueEntry *best = NULL;

		for (int i = 0; i < dsm->queue_size; i++)
		{
			WalvaultQueueEntry *e = &queue[i];

			if (e->status != WALVAULT_ENTRY_QUEUED)
				continue;
			if (best == NULL ||
				(e->requested && !best->requested) ||
				(e->requested == best->requested && e->seq < best->seq))
				best = e;
		}
		if (best == NULL)
			break;
		best->status = WALVAULT_ENTRY_IN_PROGRESS;
		best->slot = slotno;
		strlcpy(fnames[n++], best->fname, WALVAULT_FNAME_LEN);
	}
	LWLockRelease(walvault_shared->lock);
	return n;
}

/*
 * A worker (slotno) has archived fname (ok) into the place target_hash
 * stands for, or failed.  Record it, and wake the archiver if it waits for
 * this file.
 */
void
walvault_queue_finish(WalvaultDsm *dsm, int slotno, const char *fname,
					  bool ok, uint32 target_hash)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	int			archiver = -1;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < dsm->queue_size; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if (e->status == WALVAULT_ENTRY_IN_PROGRESS && e->slot == slotno &&
			strcmp(e->fname, fname) == 0)
		{
			e->status = ok ? WALVAULT_ENTRY_DONE : WALVAULT_ENTRY_FAILED;
			e->slot = -1;
			e->target_hash = target_hash;
			if (e->requested)
				archiver = walvault_shared->archiver_pgprocno;
			break;
		}
	}
	LWLockRelease(walvault_shared->lock);
	walvault_set_latch(archiver);
}

/*
 * The process in slotno is gone: put the files it was archiving back into
 * the queue.  Caller holds the lock, and wakes workers afterwards
 * (walvault_queue_wake).  Returns how many were requeued.
 */
int
walvault_queue_requeue_slot(WalvaultDsm *dsm, int slotno)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	int			n = 0;

	for (int i = 0; i < dsm->queue_size; i++)
	{
		if (queue[i].status == WALVAULT_ENTRY_IN_PROGRESS &&
			queue[i].slot == slotno)
		{
			queue[i].status = WALVAULT_ENTRY_QUEUED;
			queue[i].slot = -1;
			n++;
		}
	}
	return n;
}

/*
 * After a reload: files done into another place than target_hash (where
 * files go now) are archived again, and workers are woken for them.
 */
void
walvault_queue_retarget(WalvaultDsm *dsm, uint32 target_hash)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	int			n = 0;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < dsm->queue_size; i++)
	{
		if (queue[i].status == WALVAULT_ENTRY_DONE &&
			queue[i].target_hash != target_hash)
		{
			queue[i].status = WALVAULT_ENTRY_QUEUED;
			n++;
		}
	}
	LWLockRelease(walvault_shared->lock);

	if (n > 0)
	{
		ereport(DEBUG1,
				(errmsg_internal("pg_walvault: %d files archived ahead into the previous place are queued again",
								 n)));
		walvault_queue_wake(dsm);
	}
}

/*
 * Wake as many idle workers as there are queued files, and the coordinator
 * if that is not enough and the pool may grow.
 */
void
walvault_queue_wake(WalvaultDsm *dsm)
{
	int			idle[WALVAULT_MAX_WORKERS];
	WalvaultCensus census;
	int			nwake;
	int			coordinator = -1;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	queue_census_locked(dsm, &census, idle);
	nwake = Min(census.queued, census.idle);
	if (census.queued > census.idle &&
		census.live < walvault_effective_max_workers(walvault_worker_slots(dsm)))
		coordinator = walvault_shared->coordinator_pgprocno;
	LWLockRelease(walvault_shared->lock);

	for (int i = 0; i < nwake; i++)
		walvault_set_latch(idle[i]);
	walvault_set_latch(coordinator);
}

/*
 * Read-ahead (archiver): queue ready files (sorted by name) that the queue
 * does not hold yet, in the order the server will ask for them (timeline
 * history files first, then oldest first), until inflight files are queued
 * or in progress; and forget finished entries nobody waits for whose file
 * is no longer ready (an earlier run of the archiver completed them).
 * current, the file the archiver asks for now, is neither added nor
 * dropped here.  Returns how many files were added.
 */
int
walvault_queue_readahead(WalvaultDsm *dsm, char (*ready)[WALVAULT_FNAME_LEN],
						 int nready, const char *current, int inflight)
{
	WalvaultQueueEntry *queue = walvault_queue(dsm);
	WalvaultCensus census;
	int			added = 0;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < dsm->queue_size; i++)
	{
		WalvaultQueueEntry *e = &queue[i];

		if ((e->status == WALVAULT_ENTRY_DONE ||
			 e->status == WALVAULT_ENTRY_FAILED) && !e->requested &&
			strcmp(e->fname, current) != 0 &&
			bsearch(e->fname, ready, nready, sizeof(*ready),
					walvault_name_cmp) == NULL)
			walvault_queue_free(e);
	}

	walvault_census(dsm, &census);
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < nready; i++)
		{
			bool		history = (walvault_classify_name(ready[i]) ==
								   WALVAULT_FILE_TL_HISTORY);

			if (census.queued + census.in_progress + added >= inflight)
				break;
			if (history != (pass == 0) ||
				strcmp(ready[i], current) == 0 ||
				walvault_queue_find(dsm, ready[i]) != NULL)
				continue;
			if (walvault_queue_add(dsm, ready[i]) == NULL)
				break;
			added++;
		}
	}
	LWLockRelease(walvault_shared->lock);
	return added;
}

/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The fixed shared memory block, the DSM segment and the process slots.
 *
 * The fixed block is created by the postmaster (shmem_startup_hook) and is
 * inherited by every child, including the archiver.  The DSM segment is
 * created by the coordinator once the server is up; every other process
 * attaches lazily the first time it needs it (walvault_dsm_attach), keeps
 * the mapping for its lifetime, and copes with the segment not existing yet
 * (NULL: the archive module then archives by itself, the views show no
 * processes).
 *
 * A process of ours claims a slot when it starts and gives it back in an
 * exit callback, which also puts any file it was archiving back into the
 * queue and wakes whoever waits for it.  The callback is registered with
 * before_shmem_exit because the DSM segment is detached before on_shmem_exit
 * callbacks run.
 *
 * src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/backend_status.h"

#include "compat.h"
#include "pg_walvault.h"

WalvaultShared *walvault_shared = NULL;
bool		walvault_preloaded = false;

/* This process's mapping of the DSM segment, once attached. */
static WalvaultDsm *shm_dsm = NULL;

void
walvault_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(WalvaultShared)));
	/* the main lock and the history's */
	RequestNamedLWLockTranche("pg_walvault", 2);
}

void
walvault_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	walvault_shared = ShmemInitStruct("pg_walvault", sizeof(WalvaultShared),
									  &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("pg_walvault");

		memset(walvault_shared, 0, sizeof(WalvaultShared));
		walvault_shared->lock = &locks[0].lock;
		walvault_shared->history_lock = &locks[1].lock;
		walvault_shared->handle = DSM_HANDLE_INVALID;
		walvault_shared->coordinator_pgprocno = -1;
		walvault_shared->archiver_pgprocno = -1;
		SpinLockInit(&walvault_shared->stats_mutex);
		walvault_stats_init(&walvault_shared->stats);
		walvault_shared->history_handle = DSM_HANDLE_INVALID;
		/* unique for this run of shared memory; 0 means "none" */
		walvault_shared->stats_token = (uint64) GetCurrentTimestamp() | 1;
		/* memset made every ticket count zero and dir empty */
		SpinLockInit(&walvault_shared->dir_sync.mutex);
		ConditionVariableInit(&walvault_shared->dir_sync.cv);
		walvault_stats_load();
	}
	LWLockRelease(AddinShmemInitLock);

	/* the postmaster saves the counters when it exits */
	if (!IsUnderPostmaster)
		on_shmem_exit(walvault_stats_save, (Datum) 0);
}

/*
 * SQL functions need the shared memory that only shared_preload_libraries
 * gives.
 */
void
walvault_require_preload(void)
{
	if (walvault_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_walvault must be loaded via shared_preload_libraries"),
				 errhint("Add pg_walvault to shared_preload_libraries in postgresql.conf and restart the server.")));
}

Size
walvault_dsm_size(int nslots, int queue_size)
{
	Size		size;

	size = MAXALIGN(add_size(offsetof(WalvaultDsm, slots),
							 mul_size(sizeof(WalvaultSlot), nslots)));
	size = add_size(size, mul_size(sizeof(WalvaultQueueEntry), queue_size));
	return size;
}

/* Number of archive worker slots in the segment. */
int
walvault_worker_slots(WalvaultDsm *dsm)
{
	return dsm->nslots - WALVAULT_SLOT_FIRST_WORKER;
}

void
walvault_dsm_init(WalvaultDsm *dsm, int nslots, int queue_size)
{
	WalvaultQueueEntry *queue;
	int			i;

	memset(dsm, 0, walvault_dsm_size(nslots, queue_size));
	dsm->magic = WALVAULT_DSM_MAGIC;
	dsm->nslots = nslots;
	dsm->queue_size = queue_size;
	dsm->next_seq = 1;
	for (i = 0; i < nslots; i++)
	{
		WalvaultSlot *slot = &dsm->slots[i];

		if (i == WALVAULT_SLOT_COORDINATOR)
			slot->role = WALVAULT_ROLE_COORDINATOR;
		else if (i == WALVAULT_SLOT_COLLECTOR)
			slot->role = WALVAULT_ROLE_COLLECTOR;
		else if (i == WALVAULT_SLOT_ARCHIVER)
			slot->role = WALVAULT_ROLE_ARCHIVER;
		else
			slot->role = WALVAULT_ROLE_WORKER;
		slot->state = WALVAULT_SLOT_FREE;
		slot->pgprocno = -1;
		pg_atomic_init_u64(&slot->files_archived, 0);
		pg_atomic_init_u64(&slot->bytes_archived, 0);
		pg_atomic_init_u64(&slot->failures, 0);
	}
	queue = walvault_queue(dsm);
	for (i = 0; i < queue_size; i++)
	{
		queue[i].status = WALVAULT_ENTRY_FREE;
		queue[i].slot = -1;
	}
}

/*
 * Map the DSM segment in this process, if the coordinator has created it.
 * Returns NULL when there is none (yet).  The mapping is kept until exit.
 */
WalvaultDsm *
walvault_dsm_attach(void)
{
	dsm_handle	handle;
	dsm_segment *seg;

	if (shm_dsm != NULL)
		return shm_dsm;
	if (walvault_shared == NULL)
		return NULL;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	handle = walvault_shared->handle;
	LWLockRelease(walvault_shared->lock);
	if (handle == DSM_HANDLE_INVALID)
		return NULL;

	seg = dsm_find_mapping(handle);
	if (seg == NULL)
	{
		seg = dsm_attach(handle);
		if (seg == NULL)
			return NULL;
		dsm_pin_mapping(seg);
	}
	if (((WalvaultDsm *) dsm_segment_address(seg))->magic != WALVAULT_DSM_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pg_walvault shared memory segment has an invalid magic number")));
	shm_dsm = dsm_segment_address(seg);
	return shm_dsm;
}

/*
 * Create the DSM segment, pin it so that it outlives the coordinator, and
 * publish its handle.  Only the coordinator calls this, and only when no
 * segment exists.
 */
WalvaultDsm *
walvault_dsm_create(int nslots, int queue_size)
{
	dsm_segment *seg;

	seg = dsm_create(walvault_dsm_size(nslots, queue_size), 0);
	dsm_pin_segment(seg);
	dsm_pin_mapping(seg);
	walvault_dsm_init(dsm_segment_address(seg), nslots, queue_size);

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_shared->handle = dsm_segment_handle(seg);
	LWLockRelease(walvault_shared->lock);

	shm_dsm = dsm_segment_address(seg);
	return shm_dsm;
}

/*
 * Take slot slotno for this process.  For archive worker slots, the
 * coordinator must have reserved it for us (STARTING, same generation);
 * otherwise the slot was given away while we were starting and NULL is
 * returned.  Per-process counters start from zero; restarts and last_error
 * belong to the slot and are kept.
 */
WalvaultSlot *
walvault_slot_claim(WalvaultDsm *dsm, int slotno, WalvaultRole role,
					uint32 generation)
{
	WalvaultSlot *slot = &dsm->slots[slotno];
	TimestampTz now = GetCurrentTimestamp();

	Assert(slotno >= 0 && slotno < dsm->nslots);
	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	if (role == WALVAULT_ROLE_WORKER &&
		(slot->state != WALVAULT_SLOT_STARTING || slot->generation != generation))
	{
		LWLockRelease(walvault_shared->lock);
		return NULL;
	}
	slot->state = WALVAULT_SLOT_IDLE;
	slot->stop_requested = false;
	slot->pid = MyProcPid;
	slot->pgprocno = walvault_my_procno();
	slot->current_file[0] = '\0';
	slot->started_at = now;
	slot->state_since = now;
	pg_atomic_write_u64(&slot->files_archived, 0);
	pg_atomic_write_u64(&slot->bytes_archived, 0);
	pg_atomic_write_u64(&slot->failures, 0);
	if (role == WALVAULT_ROLE_ARCHIVER)
		walvault_shared->archiver_pgprocno = walvault_my_procno();
	else if (role == WALVAULT_ROLE_COORDINATOR)
		walvault_shared->coordinator_pgprocno = walvault_my_procno();
	LWLockRelease(walvault_shared->lock);
	return slot;
}

/*
 * Give slot slotno back (called from exit callbacks).  A file the process
 * was archiving goes back into the queue; the archiver (which may be
 * waiting for that file), the coordinator (which keeps the pool) and idle
 * workers (for the requeued file) are woken.
 */
void
walvault_slot_release(WalvaultDsm *dsm, int slotno, bool error)
{
	WalvaultSlot *slot = &dsm->slots[slotno];
	int			archiver;
	int			coordinator;
	int			requeued;

	/* an exit callback may run with the lock held by the failed code */
	LWLockReleaseAll();

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	requeued = walvault_queue_requeue_slot(dsm, slotno);
	slot->state = WALVAULT_SLOT_FREE;
	slot->stop_requested = false;
	slot->pid = 0;
	slot->pgprocno = -1;
	slot->current_file[0] = '\0';
	slot->state_since = GetCurrentTimestamp();
	slot->exited_on_error = error;
	if (error)
		slot->restarts++;
	if (slot->role == WALVAULT_ROLE_ARCHIVER)
		walvault_shared->archiver_pgprocno = -1;
	else if (slot->role == WALVAULT_ROLE_COORDINATOR)
		walvault_shared->coordinator_pgprocno = -1;
	archiver = walvault_shared->archiver_pgprocno;
	coordinator = walvault_shared->coordinator_pgprocno;
	LWLockRelease(walvault_shared->lock);

	walvault_set_latch(archiver);
	walvault_set_latch(coordinator);
	if (requeued > 0)
		walvault_queue_wake(dsm);
}

/*
 * Publish what this process is doing, in its slot and in pg_stat_activity.
 */
void
walvault_slot_set_state(WalvaultSlot *slot, WalvaultSlotState state,
						const char *file)
{
	if (slot != NULL)
	{
		LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
		slot->state = state;
		strlcpy(slot->current_file, file ? file : "", WALVAULT_FNAME_LEN);
		slot->state_since = GetCurrentTimestamp();
		LWLockRelease(walvault_shared->lock);
	}

	if (file != NULL)
	{
		char		activity[64 + WALVAULT_FNAME_LEN];

		snprintf(activity, sizeof(activity), "archiving %s", file);
		pgstat_report_activity(STATE_RUNNING, activity);
	}
	else
		pgstat_report_activity(STATE_IDLE, "");
}

void
walvault_set_latch(int pgprocno)
{
	if (pgprocno >= 0)
		SetLatch(walvault_proc_latch(pgprocno));
}

const char *
walvault_role_name(WalvaultRole role)
{
	switch (role)
	{
		case WALVAULT_ROLE_COORDINATOR:
			return "coordinator";
		case WALVAULT_ROLE_COLLECTOR:
			return "collector";
		case WALVAULT_ROLE_ARCHIVER:
			return "archiver";
		case WALVAULT_ROLE_WORKER:
			return "archive worker";
	}
	return "unknown";
}

const char *
walvault_state_name(WalvaultSlotState state)
{
	switch (state)
	{
		case WALVAULT_SLOT_FREE:
			return "stopped";
		case WALVAULT_SLOT_STARTING:
			return "starting";
		case WALVAULT_SLOT_IDLE:
			return "idle";
		case WALVAULT_SLOT_BUSY:
			return "archiving";
	}
	return "unknown";
}

/*-------------------------------------------------------------------------
 *
 * coordinator.c
 *	  The coordinator: a static background worker that owns the DSM segment
 *	  and keeps the pool of archive workers.
 *
 * Registered by _PG_init, started once the server is consistent, restarted
 * by the postmaster if it ever exits on an error.  It creates and pins the
 * DSM segment (or, after a restart of its own, attaches to the one that is
 * there, together with the workers that kept running), then loops:
 *
 * - Reap: a worker it started that stopped before taking its slot (it
 *	 failed early) gives its slot back here.
 * - Keep the collector running; one that fails at start is started again
 *	 after a growing delay (collector.c).
 * - Size the pool: at least pg_walvault.min_workers; more, up to
 *	 pg_walvault.max_workers, while more files are queued than workers are
 *	 idle; ask the surplus to leave when max_workers was lowered.  Idle
 *	 workers above min_workers leave by themselves (archive_worker.c).
 * - Sleep on its latch, set by the postmaster when a worker starts or stops
 *	 (bgw_notify_pid), by the archive module when the queue outgrows the
 *	 idle workers, and by SIGHUP.
 *
 * When no background worker slot is free it says so once, tells the
 * archiver not to wait for workers (which then archives by itself), and
 * tries again later.
 *
 * src/coordinator.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "pg_walvault.h"

/* How long to sleep when nothing wakes us; retry interval after a failure. */
#define COORD_NAP_MS			60000
#define COORD_RETRY_MS			5000

static WalvaultDsm *coord_dsm = NULL;
/* Handles of the workers this coordinator started, by slot. */
static BackgroundWorkerHandle **coord_handles = NULL;
/* Generation each handle was started with. */
static uint32 *coord_generations = NULL;
/* Has the "no free background worker slot" warning been given? */
static bool coord_warned_no_slot = false;

/* Handle of the collector this coordinator started. */
static BackgroundWorkerHandle *coord_collector = NULL;

static void coord_on_exit(int code, Datum arg);
static bool coord_register(const char *function, const char *type,
						   int slotno, uint32 generation,
						   BackgroundWorkerHandle **handle);
static void coord_report_no_slot(void);
static bool coord_ensure_collector(void);
static void coord_forget_unstarted(void);
static void coord_reap(void);
static bool coord_manage_pool(void);
static int	coord_count_exiting(void);
static int	coord_shrink(int surplus, int *wake);
static void coord_reload(void);
static bool coord_start_worker(void);

void
walvault_register_coordinator(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = 5;
	strlcpy(bgw.bgw_library_name, "pg_walvault", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "walvault_coordinator_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "pg_walvault coordinator", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "pg_walvault coordinator", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

void
walvault_coordinator_main(Datum main_arg)
{
	int			nworker_slots;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	coord_dsm = walvault_dsm_attach();
	if (coord_dsm == NULL)
	{
		/*
		 * No archive worker can run beside the other background workers in
		 * more than max_worker_processes slots.
		 */
		nworker_slots = Min(max_worker_processes, WALVAULT_MAX_WORKERS);
		coord_dsm = walvault_dsm_create(WALVAULT_SLOT_FIRST_WORKER + nworker_slots,
										WALVAULT_MAX_READAHEAD + nworker_slots + 1);
	}
	coord_handles = MemoryContextAllocZero(TopMemoryContext,
										   sizeof(BackgroundWorkerHandle *) * coord_dsm->nslots);
	coord_generations = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(uint32) * coord_dsm->nslots);

	if (walvault_slot_claim(coord_dsm, WALVAULT_SLOT_COORDINATOR,
							WALVAULT_ROLE_COORDINATOR, 0) == NULL)
		proc_exit(1);
	before_shmem_exit(coord_on_exit, (Datum) 0);
	coord_forget_unstarted();
	pgstat_report_activity(STATE_RUNNING, "managing the archive worker pool");

	walvault_check_target(WARNING);
	walvault_target_cleanup();

	for (;;)
	{
		bool		retry;
		long		timeout;

		coord_reap();
		retry = !coord_ensure_collector();
		retry |= coord_manage_pool();

		timeout = retry ? COORD_RETRY_MS : COORD_NAP_MS;
		/* a collector waiting out its backoff starts on time */
		if (walvault_collector_delay() > 0)
			timeout = Min(timeout, walvault_collector_delay());
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout,
						 walvault_wait_event(WALVAULT_WAIT_COORDINATOR));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		/*
		 * Exit code 1, so that the postmaster starts us again if we were
		 * terminated by hand; at shutdown nothing is restarted anyway.
		 */
		if (ShutdownRequestPending)
			proc_exit(1);

		if (ConfigReloadPending)
			coord_reload();
	}
}

/*
 * Reload the configuration: say what is wrong with where files go now,
 * clean that place up, requeue files archived ahead into the previous one
 * (queue.c), and try again at once to start workers a new pool size allows.
 */
static void
coord_reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	walvault_check_target(WARNING);
	walvault_target_cleanup();
	walvault_queue_retarget(coord_dsm, walvault_target_hash());
	coord_warned_no_slot = false;
	/* and a new setting may cure a failing collector */
	walvault_collector_retry_now();
}

static void
coord_on_exit(int code, Datum arg)
{
	/*
	 * Workers we registered but that have not started may never start (at
	 * shutdown the postmaster starts none): nobody must wait for them.
	 */
	coord_forget_unstarted();
	walvault_slot_release(coord_dsm, WALVAULT_SLOT_COORDINATOR, code != 0);
}

/*
 * After a restart of the coordinator: workers the previous one registered
 * but that never took their slot cannot be watched (their handles died with
 * it).  Free those slots; such a worker finds its slot gone and leaves.
 */
static void
coord_forget_unstarted(void)
{
	int			i;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	for (i = WALVAULT_SLOT_FIRST_WORKER; i < coord_dsm->nslots; i++)
	{
		if (coord_dsm->slots[i].state == WALVAULT_SLOT_STARTING)
			coord_dsm->slots[i].state = WALVAULT_SLOT_FREE;
	}
	LWLockRelease(walvault_shared->lock);
}

/*
 * Forget workers that have stopped.  One that stopped before taking its slot
 * (it failed during start-up) leaves the slot STARTING: free it.  Report a
 * worker that exited on an error; the pool sizing below replaces it.
 */
static void
coord_reap(void)
{
	int			i;

	for (i = WALVAULT_SLOT_FIRST_WORKER; i < coord_dsm->nslots; i++)
	{
		WalvaultSlot *slot = &coord_dsm->slots[i];
		pid_t		pid;
		bool		crashed;

		if (coord_handles[i] != NULL &&
			GetBackgroundWorkerPid(coord_handles[i], &pid) == BGWH_STOPPED)
		{
			LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
			if (slot->state == WALVAULT_SLOT_STARTING &&
				slot->generation == coord_generations[i])
			{
				slot->state = WALVAULT_SLOT_FREE;
				slot->restarts++;
			}
			LWLockRelease(walvault_shared->lock);
			pfree(coord_handles[i]);
			coord_handles[i] = NULL;
		}

		LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
		crashed = slot->exited_on_error;
		slot->exited_on_error = false;
		LWLockRelease(walvault_shared->lock);
		if (crashed)
			ereport(LOG,
					(errmsg("pg_walvault archive worker %d exited on an error; its file was queued again",
							i)));
	}
}

/*
 * Bring the pool to the size the queue and the GUCs ask for.  Returns true
 * when workers are missing that we could not start (so the caller retries
 * soon).
 */
static bool
coord_manage_pool(void)
{
	int			nworker_slots = walvault_worker_slots(coord_dsm);
	int			max_workers = walvault_effective_max_workers(nworker_slots);
	int			min_workers = walvault_effective_min_workers(nworker_slots);
	WalvaultCensus census;
	int			wake[WALVAULT_MAX_WORKERS];
	int			nwake = 0;
	int			exiting;
	int			available;
	int			want;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_census(coord_dsm, &census);
	exiting = coord_count_exiting();
	if (census.live > max_workers)
		nwake = coord_shrink(census.live - max_workers, wake);
	LWLockRelease(walvault_shared->lock);
	for (int i = 0; i < nwake; i++)
		walvault_set_latch(wake[i]);

	/* grow while more files are queued than workers are (or will be) free */
	available = census.live - census.busy;
	want = Max(min_workers,
			   Min(max_workers, census.live + Max(0, census.queued - available)));
	for (int i = census.live + exiting; i < want; i++)
	{
		if (!coord_start_worker())
			return true;
	}
	return false;
}

/*
 * Worker slots freed by a process that has not finished exiting.  They are
 * not refilled yet: the replacement starts once the postmaster reports the
 * exit (bgw_notify_pid wakes us), in the same slot, so that the slot's
 * restarts stay visible.  Caller holds the lock.
 */
static int
coord_count_exiting(void)
{
	int			exiting = 0;

	for (int i = WALVAULT_SLOT_FIRST_WORKER; i < coord_dsm->nslots; i++)
	{
		if (coord_dsm->slots[i].state == WALVAULT_SLOT_FREE &&
			coord_handles[i] != NULL)
			exiting++;
	}
	return exiting;
}

/*
 * Ask surplus workers to leave: idle ones first, busy ones after their
 * file.  Caller holds the lock, and wakes the workers whose PGPROC numbers
 * are put in wake (room for WALVAULT_MAX_WORKERS) once it has released it.
 * Returns their number.
 */
static int
coord_shrink(int surplus, int *wake)
{
	int			nwake = 0;

	for (int pass = 0; pass < 2 && surplus > 0; pass++)
	{
		for (int i = coord_dsm->nslots - 1;
			 surplus > 0 && i >= WALVAULT_SLOT_FIRST_WORKER; i--)
		{
			WalvaultSlot *slot = &coord_dsm->slots[i];

			if (slot->state == WALVAULT_SLOT_FREE || slot->stop_requested ||
				(pass == 0 && slot->state != WALVAULT_SLOT_IDLE))
				continue;
			slot->stop_requested = true;
			wake[nwake++] = slot->pgprocno;
			surplus--;
		}
	}
	return nwake;
}

/*
 * Reserve a free worker slot and start a worker for it.  Returns false when
 * no background worker slot is free.
 */
static bool
coord_start_worker(void)
{
	BackgroundWorkerHandle *handle;
	int			slotno = -1;
	uint32		generation = 0;
	int			archiver;
	int			i;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	for (i = WALVAULT_SLOT_FIRST_WORKER; i < coord_dsm->nslots; i++)
	{
		WalvaultSlot *slot = &coord_dsm->slots[i];

		if (slot->state == WALVAULT_SLOT_FREE && coord_handles[i] == NULL)
		{
			slot->state = WALVAULT_SLOT_STARTING;
			slot->generation++;
			slot->state_since = GetCurrentTimestamp();
			generation = slot->generation;
			slotno = i;
			break;
		}
	}
	LWLockRelease(walvault_shared->lock);
	if (slotno < 0)
		return true;			/* every slot is in use or still exiting */

	if (!coord_register("walvault_archive_worker_main",
						"pg_walvault archive worker", slotno, generation,
						&handle))
	{
		LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
		coord_dsm->slots[slotno].state = WALVAULT_SLOT_FREE;
		walvault_shared->spawn_failed = true;
		archiver = walvault_shared->archiver_pgprocno;
		LWLockRelease(walvault_shared->lock);
		/* the archiver may be waiting for a worker that will not come */
		walvault_set_latch(archiver);
		coord_report_no_slot();
		return false;
	}

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_shared->spawn_failed = false;
	LWLockRelease(walvault_shared->lock);
	coord_warned_no_slot = false;
	coord_handles[slotno] = handle;
	coord_generations[slotno] = generation;
	return true;
}

/*
 * Start the collector unless it runs.  Returns false when no background
 * worker slot is free.
 */
static bool
coord_ensure_collector(void)
{
	pid_t		pid;
	bool		slot_free;

	if (coord_collector != NULL)
	{
		if (GetBackgroundWorkerPid(coord_collector, &pid) != BGWH_STOPPED)
			return true;
		pfree(coord_collector);
		coord_collector = NULL;
		walvault_collector_stopped(coord_dsm);
	}
	/* one that failed at start is started again after a delay */
	if (walvault_collector_delay() > 0)
		return true;

	/* one started by an earlier coordinator may still run */
	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	slot_free = coord_dsm->slots[WALVAULT_SLOT_COLLECTOR].state == WALVAULT_SLOT_FREE;
	LWLockRelease(walvault_shared->lock);
	if (!slot_free)
		return true;

	if (!coord_register("walvault_collector_main", "pg_walvault collector",
						WALVAULT_SLOT_COLLECTOR, 0, &coord_collector))
	{
		coord_collector = NULL;
		coord_report_no_slot();
		return false;
	}
	walvault_collector_started();
	return true;
}

/*
 * Register a dynamic background worker of ours that reports to us.
 */
static bool
coord_register(const char *function, const char *type, int slotno,
			   uint32 generation, BackgroundWorkerHandle **handle)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_ConsistentState;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(bgw.bgw_library_name, "pg_walvault", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, function, BGW_MAXLEN);
	if (slotno >= WALVAULT_SLOT_FIRST_WORKER)
		snprintf(bgw.bgw_name, BGW_MAXLEN, "%s %d", type, slotno);
	else
		strlcpy(bgw.bgw_name, type, BGW_MAXLEN);
	strlcpy(bgw.bgw_type, type, BGW_MAXLEN);
	bgw.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(bgw.bgw_extra, &generation, sizeof(generation));
	bgw.bgw_notify_pid = MyProcPid;

	return RegisterDynamicBackgroundWorker(&bgw, handle);
}

/* Say once, until a start succeeds again, that no slot was free. */
static void
coord_report_no_slot(void)
{
	if (!coord_warned_no_slot)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a pg_walvault background worker: no background worker slot is free"),
				 errdetail("The archiver archives files by itself until an archive worker can start."),
				 errhint("Raise max_worker_processes (currently %d) and restart the server, or lower pg_walvault.max_workers.",
						 max_worker_processes)));
	coord_warned_no_slot = true;
}

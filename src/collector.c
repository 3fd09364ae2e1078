/*-------------------------------------------------------------------------
 *
 * collector.c
 *	  The stats collector: a dynamic background worker, started and
 *	  restarted by the coordinator, that turns counters into history.
 *
 * Every pg_walvault.stats_interval it takes one sample: what was archived
 * and what failed since the previous sample (from the cumulative counters
 * the archive workers bump with atomics), how much WAL the server generated
 * (from the insert position, and records and full-page images from
 * pg_stat_wal), checkpoints and the server's own archiver counts, how many
 * files are waiting, and how far archiving lags behind.  The sample goes
 * into the history ring.
 *
 * The collector keeps no state of its own: the ring is a DSM segment and
 * the values at the last sample are in the fixed block, so a collector that
 * dies and is restarted goes on where it stopped, and readers never depend
 * on it being alive.  At exit it saves the ring (stats_file.c).
 *
 * src/collector.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_walvault.h"

/*
 * Coordinator side (see walvault_collector_stopped()): a collector that
 * stops sooner than this after it was started failed at start, and the
 * next one waits COLL_BACKOFF_MIN_MS, doubled after each such failure up to
 * COLL_BACKOFF_MAX_MS.
 */
#define COLL_STABLE_MS			10000
#define COLL_BACKOFF_MIN_MS		1000
#define COLL_BACKOFF_MAX_MS		60000

static WalvaultDsm *coll_dsm = NULL;
static WalvaultHistory *coll_hist = NULL;

/* Coordinator side: the collector it started last, and its failures. */
static TimestampTz coll_started_at = 0;
static TimestampTz coll_next_start = 0;
static int	coll_failures = 0;

static void coll_run(void);
static void coll_on_exit(int code, Datum arg);
static void coll_remember_error(void);
static WalvaultHistory *coll_create_ring(int capacity);
static void coll_take_sample(void);
static void coll_server_stats(WalvaultServerStats *stats);

void
walvault_collector_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	coll_dsm = walvault_dsm_attach();
	if (coll_dsm == NULL ||
		walvault_slot_claim(coll_dsm, WALVAULT_SLOT_COLLECTOR,
							WALVAULT_ROLE_COLLECTOR, 0) == NULL)
		proc_exit(1);
	before_shmem_exit(coll_on_exit, (Datum) 0);
	pgstat_report_activity(STATE_IDLE, "");

	/*
	 * An error ends the collector (there is no transaction to abort); keep
	 * it in our slot first, where the views and the coordinator find it.
	 */
	PG_TRY();
	{
		coll_run();
	}
	PG_CATCH();
	{
		coll_remember_error();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Set up the ring, then sample every stats_interval until told to stop. */
static void
coll_run(void)
{
	MemoryContext sample_context;
	TimestampTz next_sample;

	/*
	 * A ring that exists was kept for us by a previous collector of this
	 * server run (and is resized if the setting changed since); otherwise
	 * this is a new run, which may continue the history saved at the last
	 * clean shutdown.
	 */
	coll_hist = walvault_history_attach();
	if (coll_hist == NULL)
	{
		coll_hist = coll_create_ring(walvault_history_size);
		walvault_history_load(coll_hist);
	}
	else
	{
		walvault_history_discard_file();
		if (coll_hist->capacity != walvault_history_size)
			coll_hist = coll_create_ring(walvault_history_size);
	}

	sample_context = AllocSetContextCreate(TopMemoryContext,
										   "pg_walvault collector",
										   ALLOCSET_DEFAULT_SIZES);
	next_sample = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  walvault_stats_interval);
	for (;;)
	{
		TimestampTz now;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();

		/*
		 * Exit code 1 counts as a restart in the views, and the coordinator
		 * starts a new collector unless the server is shutting down.
		 */
		if (ShutdownRequestPending)
			proc_exit(1);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (walvault_history_size != coll_hist->capacity)
				coll_hist = coll_create_ring(walvault_history_size);
			/* a new interval counts from now */
			next_sample = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  walvault_stats_interval);
		}

		now = GetCurrentTimestamp();
		if (now >= next_sample)
		{
			MemoryContext oldcontext = MemoryContextSwitchTo(sample_context);

			coll_take_sample();
			MemoryContextSwitchTo(oldcontext);
			MemoryContextReset(sample_context);
			/* keep the cadence, but never try to catch up on missed ones */
			next_sample = TimestampTzPlusMilliseconds(next_sample,
													  walvault_stats_interval);
			if (next_sample <= now)
				next_sample = TimestampTzPlusMilliseconds(now,
														  walvault_stats_interval);
		}

		wait_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
												  next_sample);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(wait_ms, 1),
						 walvault_wait_event(WALVAULT_WAIT_COLLECTOR));
		ResetLatch(MyLatch);
	}
}

static void
coll_on_exit(int code, Datum arg)
{
	LWLockReleaseAll();
	walvault_history_save();
	walvault_slot_release(coll_dsm, WALVAULT_SLOT_COLLECTOR, code != 0);
}

/*
 * Keep the error that is about to end the collector in its slot: the slot
 * outlives the process, so the views and the coordinator (which says why
 * the collector keeps failing) can tell it.
 */
static void
coll_remember_error(void)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	ErrorData  *edata = CopyErrorData();
	WalvaultSlot *slot = &coll_dsm->slots[WALVAULT_SLOT_COLLECTOR];

	MemoryContextSwitchTo(oldcontext);
	LWLockReleaseAll();
	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_copy_error(slot->last_error,
						edata->message ? edata->message : "");
	slot->last_error_time = GetCurrentTimestamp();
	LWLockRelease(walvault_shared->lock);
}

/*
 * Create the ring (or a new one of another size).  Dynamic shared memory
 * may have no room for it (a small /dev/shm): say what the setting costs.
 */
static WalvaultHistory *
coll_create_ring(int capacity)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	WalvaultHistory *hist = NULL;

	PG_TRY();
	{
		hist = walvault_history_create(capacity);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("could not create the pg_walvault history of %d samples",
						capacity),
				 errdetail_internal("%s", edata->message),
				 errhint("Lower pg_walvault.history_size, or give dynamic shared memory more room: this history takes %zu bytes, %zu per sample.",
						 walvault_history_size_bytes(capacity),
						 sizeof(WalvaultSample))));
	}
	PG_END_TRY();
	return hist;
}

/*
 * Coordinator: it started a collector.
 */
void
walvault_collector_started(void)
{
	coll_started_at = GetCurrentTimestamp();
}

/*
 * Coordinator: the collector it started has stopped.  One that stopped soon
 * after it started failed at start, and would fail again at once (no room
 * for its ring, say): the next start waits, longer after each failure in a
 * row, and the first failure of a row is reported once, with the error the
 * collector left in its slot.
 */
void
walvault_collector_stopped(WalvaultDsm *dsm)
{
	TimestampTz now = GetCurrentTimestamp();
	char		last_error[WALVAULT_ERROR_LEN];
	int			delay_ms;

	if (coll_started_at == 0 ||
		TimestampDifferenceExceeds(coll_started_at, now, COLL_STABLE_MS))
	{
		coll_failures = 0;
		coll_next_start = 0;
		return;
	}

	coll_failures++;
	delay_ms = COLL_BACKOFF_MIN_MS << Min(coll_failures - 1, 6);
	delay_ms = Min(delay_ms, COLL_BACKOFF_MAX_MS);
	coll_next_start = TimestampTzPlusMilliseconds(now, delay_ms);
	if (coll_failures > 1)
		return;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	strlcpy(last_error, dsm->slots[WALVAULT_SLOT_COLLECTOR].last_error,
			WALVAULT_ERROR_LEN);
	LWLockRelease(walvault_shared->lock);
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pg_walvault collector stopped right after it started"),
			 errdetail("Its last error was: %s.  It is started again in %d s, then after delays that double up to %d s while it keeps failing.",
					   last_error[0] ? last_error : "none",
					   delay_ms / 1000, COLL_BACKOFF_MAX_MS / 1000),
			 errhint("Fix the cause, then reload the configuration to start it at once.  The history takes %zu bytes of dynamic shared memory at pg_walvault.history_size = %d.",
					 walvault_history_size_bytes(walvault_history_size),
					 walvault_history_size)));
}

/*
 * Coordinator: milliseconds until a collector may be started; 0 for now.
 */
long
walvault_collector_delay(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (coll_next_start == 0 || now >= coll_next_start)
		return 0;
	return Max(TimestampDifferenceMilliseconds(now, coll_next_start), 1);
}

/*
 * Coordinator, at reload: a new setting may have fixed what made the
 * collector fail; try at once, and report a new failure again.
 */
void
walvault_collector_retry_now(void)
{
	coll_failures = 0;
	coll_next_start = 0;
}

/*
 * Delta of one of the server's counters, which pg_stat_reset_shared() may
 * have taken below its base: it then counts from the reset.
 */
static inline uint64
coll_delta(uint64 now, uint64 base)
{
	return now >= base ? now - base : now;
}

static void
coll_take_sample(void)
{
	WalvaultSample sample;
	WalvaultCollectorBase next;
	WalvaultCollectorBase prev;
	WalvaultCounters delta;

	memset(&sample, 0, sizeof(sample));
	memset(&next, 0, sizeof(next));
	next.wal_position = walvault_wal_position();
	next.time = GetCurrentTimestamp();
	coll_server_stats(&next.server);
	sample.sample_time = next.time;
	walvault_pending(coll_dsm, next.wal_position, &sample.pending_count,
					 &sample.archive_lag_bytes);

	/*
	 * Our own counters are read and the base moved in one step, after the
	 * directory scan: what is counted meanwhile goes into this sample.
	 * Resets do not touch the totals read here (counters.c).
	 */
	walvault_stats_advance_collector(&next, &prev);
	walvault_counters_diff(&next.counters, &prev.counters, &delta);

	if (prev.time != 0 && next.time > prev.time)
		sample.interval_secs = (next.time - prev.time) / 1000000.0;
	else
		sample.interval_secs = walvault_stats_interval / 1000.0;
	if (prev.wal_position != InvalidXLogRecPtr &&
		next.wal_position > prev.wal_position)
		sample.wal_bytes = next.wal_position - prev.wal_position;
	sample.archived_count = delta.archived_count;
	sample.archived_bytes = delta.archived_bytes;
	sample.stored_bytes = delta.stored_bytes;
	sample.failed_count = delta.failed_count;
	sample.wal_records = coll_delta(next.server.wal_records,
									prev.server.wal_records);
	sample.wal_fpi = coll_delta(next.server.wal_fpi, prev.server.wal_fpi);
	sample.checkpoints = coll_delta(next.server.checkpoints,
									prev.server.checkpoints);
	sample.server_archived_count = coll_delta(next.server.archived_count,
											  prev.server.archived_count);
	sample.server_failed_count = coll_delta(next.server.failed_count,
											prev.server.failed_count);

	walvault_history_append(coll_hist, &sample, 1);
}

/*
 * Read the server's own cumulative statistics: pg_stat_wal, the
 * checkpointer's part of pg_stat_bgwriter, and pg_stat_archiver.  The
 * snapshot is dropped at once so that the next sample sees fresh values.
 */
static void
coll_server_stats(WalvaultServerStats *stats)
{
	PgStat_WalStats *wal = pgstat_fetch_stat_wal();
	PgStat_CheckpointerStats *checkpointer = pgstat_fetch_stat_checkpointer();
	PgStat_ArchiverStats *archiver = pgstat_fetch_stat_archiver();

	walvault_wal_counts(wal, &stats->wal_records, &stats->wal_fpi);
	stats->checkpoints = walvault_checkpoint_count(checkpointer);
	stats->archived_count = (uint64) archiver->archived_count;
	stats->failed_count = (uint64) archiver->failed_count;
	pgstat_clear_snapshot();
}

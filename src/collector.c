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

static WalvaultDsm *coll_dsm = NULL;
static WalvaultHistory *coll_hist = NULL;

static void coll_on_exit(int code, Datum arg);
static void coll_take_sample(void);
static void coll_server_stats(WalvaultServerStats *stats);

void
walvault_collector_main(Datum main_arg)
{
	MemoryContext sample_context;
	TimestampTz next_sample;

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
	 * A ring that exists was kept for us by a previous collector of this
	 * server run; otherwise this is a new run, which may continue the
	 * history saved at the last clean shutdown.
	 */
	coll_hist = walvault_history_attach();
	if (coll_hist == NULL)
	{
		coll_hist = walvault_history_create(walvault_history_size);
		walvault_history_load(coll_hist);
	}
	else
		walvault_history_discard_file();

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
				coll_hist = walvault_history_create(walvault_history_size);
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
	walvault_history_save(coll_hist);
	walvault_slot_release(coll_dsm, WALVAULT_SLOT_COLLECTOR, code != 0);
}

/* Delta of a counter that a reset may have taken below its base. */
static inline uint64
coll_delta(uint64 now, uint64 base)
{
	return now >= base ? now - base : now;
}

static void
coll_take_sample(void)
{
	WalvaultSample sample;
	XLogRecPtr	insert_lsn = GetXLogInsertRecPtr();
	TimestampTz now = GetCurrentTimestamp();
	uint64		archived_count = pg_atomic_read_u64(&walvault_shared->archived_count);
	uint64		archived_bytes = pg_atomic_read_u64(&walvault_shared->archived_bytes);
	uint64		stored_bytes = pg_atomic_read_u64(&walvault_shared->stored_bytes);
	uint64		failed_count = pg_atomic_read_u64(&walvault_shared->failed_count);
	WalvaultServerStats server;
	WalvaultSavedState *base;

	coll_server_stats(&server);
	memset(&sample, 0, sizeof(sample));
	sample.sample_time = now;
	walvault_pending(coll_dsm, insert_lsn, &sample.pending_count,
					 &sample.archive_lag_bytes);

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	base = &walvault_shared->saved;
	if (base->base_time != 0 && now > base->base_time)
		sample.interval_secs = (now - base->base_time) / 1000000.0;
	else
		sample.interval_secs = walvault_stats_interval / 1000.0;
	if (base->base_insert_lsn != InvalidXLogRecPtr &&
		insert_lsn > base->base_insert_lsn)
		sample.wal_bytes = insert_lsn - base->base_insert_lsn;
	sample.archived_count = coll_delta(archived_count, base->base_archived_count);
	sample.archived_bytes = coll_delta(archived_bytes, base->base_archived_bytes);
	sample.stored_bytes = coll_delta(stored_bytes, base->base_stored_bytes);
	sample.failed_count = coll_delta(failed_count, base->base_failed_count);
	sample.wal_records = coll_delta(server.wal_records,
									base->base_server.wal_records);
	sample.wal_fpi = coll_delta(server.wal_fpi, base->base_server.wal_fpi);
	sample.checkpoints = coll_delta(server.checkpoints,
									base->base_server.checkpoints);
	sample.server_archived_count = coll_delta(server.archived_count,
											  base->base_server.archived_count);
	sample.server_failed_count = coll_delta(server.failed_count,
											base->base_server.failed_count);

	base->base_server = server;
	base->base_archived_count = archived_count;
	base->base_archived_bytes = archived_bytes;
	base->base_stored_bytes = stored_bytes;
	base->base_failed_count = failed_count;
	base->base_insert_lsn = insert_lsn;
	base->base_time = now;

	walvault_history_append(coll_hist, &sample);
	LWLockRelease(walvault_shared->lock);
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

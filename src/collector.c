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
	walvault_history_save();
	walvault_slot_release(coll_dsm, WALVAULT_SLOT_COLLECTOR, code != 0);
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

/*-------------------------------------------------------------------------
 *
 * views.c
 *	  SQL-callable functions behind the pg_stat_walvault views.
 *
 * Readers read shared memory directly, under the shared lock for the few
 * non-atomic fields, and never wait for one of our processes: a view answers
 * even when every worker is stuck on a slow disk.  Before the coordinator
 * has created the DSM segment the views show the counters and no processes.
 *
 * src/views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog_internal.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_walvault.h"

PG_FUNCTION_INFO_V1(pg_walvault_stats);
PG_FUNCTION_INFO_V1(pg_walvault_workers);
PG_FUNCTION_INFO_V1(pg_walvault_reset);

#define VIEWS_STATS_COLS	12
#define VIEWS_WORKER_COLS	13

static int64 views_count_ready(void);

static Datum
views_text_or_null(const char *s, bool *isnull)
{
	*isnull = (s[0] == '\0');
	return *isnull ? (Datum) 0 : CStringGetTextDatum(s);
}

static Datum
views_time_or_null(TimestampTz t, bool *isnull)
{
	*isnull = (t == 0);
	return TimestampTzGetDatum(t);
}

/*
 * One row: the cumulative counters, what is in flight, and how many
 * workers run.
 */
Datum
pg_walvault_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[VIEWS_STATS_COLS];
	bool		nulls[VIEWS_STATS_COLS] = {0};
	WalvaultDsm *dsm;
	char		last_archived_wal[WALVAULT_FNAME_LEN];
	char		last_failed_wal[WALVAULT_FNAME_LEN];
	char		last_error[WALVAULT_ERROR_LEN];
	TimestampTz last_archived_time;
	TimestampTz last_failed_time;
	TimestampTz stats_reset;
	int64		done_ahead = 0;
	int64		in_progress = 0;
	int32		active_workers = 0;
	int64		pending;
	int			i;

	walvault_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	pending = views_count_ready();
	dsm = walvault_dsm_attach();

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	strlcpy(last_archived_wal, walvault_shared->last_archived_wal, WALVAULT_FNAME_LEN);
	strlcpy(last_failed_wal, walvault_shared->last_failed_wal, WALVAULT_FNAME_LEN);
	strlcpy(last_error, walvault_shared->last_error, WALVAULT_ERROR_LEN);
	last_archived_time = walvault_shared->last_archived_time;
	last_failed_time = walvault_shared->last_failed_time;
	stats_reset = walvault_shared->stats_reset;
	if (dsm != NULL)
	{
		WalvaultQueueEntry *queue = walvault_queue(dsm);

		for (i = 0; i < dsm->queue_size; i++)
		{
			if (queue[i].status == WALVAULT_ENTRY_DONE)
				done_ahead++;
			else if (queue[i].status == WALVAULT_ENTRY_IN_PROGRESS)
				in_progress++;
		}
		for (i = WALVAULT_SLOT_FIRST_WORKER; i < dsm->nslots; i++)
			if (dsm->slots[i].state == WALVAULT_SLOT_IDLE ||
				dsm->slots[i].state == WALVAULT_SLOT_BUSY)
				active_workers++;
	}
	LWLockRelease(walvault_shared->lock);

	values[0] = Int64GetDatum(pg_atomic_read_u64(&walvault_shared->archived_count));
	values[1] = Int64GetDatum(pg_atomic_read_u64(&walvault_shared->archived_bytes));
	values[2] = Int64GetDatum(pg_atomic_read_u64(&walvault_shared->failed_count));
	values[3] = views_text_or_null(last_archived_wal, &nulls[3]);
	values[4] = views_time_or_null(last_archived_time, &nulls[4]);
	values[5] = views_text_or_null(last_failed_wal, &nulls[5]);
	values[6] = views_time_or_null(last_failed_time, &nulls[6]);
	values[7] = views_text_or_null(last_error, &nulls[7]);
	/* archived ahead, but still .ready until the archiver asks: not pending */
	values[8] = Int64GetDatum(Max(pending - done_ahead, 0));
	values[9] = Int64GetDatum(in_progress);
	values[10] = Int32GetDatum(active_workers);
	values[11] = TimestampTzGetDatum(stats_reset);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Number of .ready files in pg_wal/archive_status. */
static int64
views_count_ready(void)
{
	DIR		   *dir;
	struct dirent *de;
	int64		n = 0;

	dir = AllocateDir(XLOGDIR "/archive_status");
	while ((de = ReadDir(dir, XLOGDIR "/archive_status")) != NULL)
	{
		size_t		len = strlen(de->d_name);

		if (len > 6 && strcmp(de->d_name + len - 6, ".ready") == 0)
			n++;
	}
	FreeDir(dir);
	return n;
}

/* One row per running process of ours. */
Datum
pg_walvault_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WalvaultDsm *dsm;
	int			i;

	walvault_require_preload();
	walvault_init_srf(fcinfo);

	dsm = walvault_dsm_attach();
	if (dsm == NULL)
		PG_RETURN_VOID();

	for (i = 0; i < dsm->nslots; i++)
	{
		WalvaultSlot *slot = &dsm->slots[i];
		WalvaultSlot copy;
		Datum		values[VIEWS_WORKER_COLS];
		bool		nulls[VIEWS_WORKER_COLS] = {0};

		LWLockAcquire(walvault_shared->lock, LW_SHARED);
		memcpy(&copy, slot, offsetof(WalvaultSlot, files_archived));
		LWLockRelease(walvault_shared->lock);
		if (copy.state == WALVAULT_SLOT_FREE)
			continue;

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum(copy.pid);
		nulls[1] = (copy.pid == 0);
		values[2] = CStringGetTextDatum(walvault_role_name(copy.role));
		values[3] = CStringGetTextDatum(walvault_state_name(copy.state));
		values[4] = views_text_or_null(copy.current_file, &nulls[4]);
		values[5] = views_time_or_null(copy.started_at, &nulls[5]);
		values[6] = views_time_or_null(copy.state_since, &nulls[6]);
		values[7] = Int64GetDatum(pg_atomic_read_u64(&slot->files_archived));
		values[8] = Int64GetDatum(pg_atomic_read_u64(&slot->bytes_archived));
		values[9] = Int64GetDatum(pg_atomic_read_u64(&slot->failures));
		values[10] = Int32GetDatum(copy.restarts);
		values[11] = views_text_or_null(copy.last_error, &nulls[11]);
		values[12] = views_time_or_null(copy.last_error_time, &nulls[12]);
		if (copy.state == WALVAULT_SLOT_STARTING)
			nulls[5] = true;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * Reset the counters (target NULL, 'all' or 'counters').
 */
Datum
pg_walvault_reset(PG_FUNCTION_ARGS)
{
	char	   *target = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	WalvaultDsm *dsm;
	int			i;

	walvault_require_preload();
	if (target != NULL && strcmp(target, "all") != 0 &&
		strcmp(target, "counters") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized reset target: \"%s\"", target),
				 errhint("Target must be \"all\" or \"counters\", or NULL for all.")));

	pg_atomic_write_u64(&walvault_shared->archived_count, 0);
	pg_atomic_write_u64(&walvault_shared->archived_bytes, 0);
	pg_atomic_write_u64(&walvault_shared->stored_bytes, 0);
	pg_atomic_write_u64(&walvault_shared->failed_count, 0);
	for (i = 0; i < WALVAULT_LATENCY_BUCKETS; i++)
		pg_atomic_write_u64(&walvault_shared->latency_hist[i], 0);

	dsm = walvault_dsm_attach();
	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
	walvault_shared->last_archived_wal[0] = '\0';
	walvault_shared->last_archived_time = 0;
	walvault_shared->last_failed_wal[0] = '\0';
	walvault_shared->last_failed_time = 0;
	walvault_shared->last_error[0] = '\0';
	walvault_shared->stats_reset = GetCurrentTimestamp();
	if (dsm != NULL)
	{
		for (i = 0; i < dsm->nslots; i++)
		{
			WalvaultSlot *slot = &dsm->slots[i];

			pg_atomic_write_u64(&slot->files_archived, 0);
			pg_atomic_write_u64(&slot->bytes_archived, 0);
			pg_atomic_write_u64(&slot->failures, 0);
			slot->restarts = 0;
			slot->last_error[0] = '\0';
			slot->last_error_time = 0;
		}
	}
	LWLockRelease(walvault_shared->lock);

	PG_RETURN_VOID();
}

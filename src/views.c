/*-------------------------------------------------------------------------
 *
 * views.c
 *	  SQL-callable functions behind the pg_stat_walvault views.
 *
 * Readers read shared memory directly and never wait for one of our
 * processes: a view answers even when every worker is stuck on a slow disk.
 * The counters come from one consistent copy (counters.c), the history from
 * copies of a few thousand samples at a time taken under the history's own
 * lock (history.c); neither holds the lock the archive path takes.  Before the coordinator has created the DSM
 * segment the views show the counters and no processes.
 *
 * src/views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_walvault.h"
#include "s3_client.h"

PG_FUNCTION_INFO_V1(pg_walvault_stats);
PG_FUNCTION_INFO_V1(pg_walvault_stats_1_1);
PG_FUNCTION_INFO_V1(pg_walvault_workers);
PG_FUNCTION_INFO_V1(pg_walvault_history);
PG_FUNCTION_INFO_V1(pg_walvault_reset);
PG_FUNCTION_INFO_V1(pg_walvault_store);

/* pg_walvault_stats() columns: 1.1 added stored_bytes */
#define VIEWS_STATS_COLS_1_0	17
#define VIEWS_STATS_COLS	18

/* SQL API versions whose functions this library serves */
typedef enum ViewsApiVersion
{
	VIEWS_API_1_0,
	VIEWS_API_1_1
} ViewsApiVersion;

#define VIEWS_WORKER_COLS	13
#define VIEWS_HISTORY_COLS	15
#define VIEWS_STORE_COLS	14

static Datum views_stats(FunctionCallInfo fcinfo, ViewsApiVersion api);

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
 * Archived bytes per second over the samples of the last window_secs, or
 * NULL when there is no history yet.  The rate is over the time the samples
 * cover, so it is right even before the collector has run for a full
 * window.
 */
static Datum
views_rate(TimestampTz now, int window_secs, bool *isnull)
{
	TimestampTz since = now - (TimestampTz) window_secs * USECS_PER_SEC;
	double		bytes;
	double		secs;

	*isnull = !walvault_history_rate(since, &bytes, &secs);
	return Float8GetDatum(secs > 0 ? bytes / secs : 0);
}

/*
 * Upper bound, in milliseconds, of the latency under which a fraction of
 * the files were archived; NULL if none was.
 */
static Datum
views_latency_percentile(const uint64 *counts, double fraction, bool *isnull)
{
	uint64		total = 0;
	uint64		seen = 0;
	int			i;

	for (i = 0; i < WALVAULT_LATENCY_BUCKETS; i++)
		total += counts[i];
	*isnull = (total == 0);
	if (total == 0)
		return (Datum) 0;

	for (i = 0; i < WALVAULT_LATENCY_BUCKETS - 1; i++)
	{
		seen += counts[i];
		if ((double) seen >= fraction * total)
			break;
	}
	/* bucket i holds latencies below 2^i ms */
	return Float8GetDatum(ldexp(1.0, i));
}

/*
 * One row: the cumulative counters, what is in flight, how many workers
 * run, rates and latency.  The library serves the function of every SQL
 * version of the extension, so that a new library works before ALTER
 * EXTENSION ... UPDATE has run.
 */
Datum
pg_walvault_stats(PG_FUNCTION_ARGS)
{
	return views_stats(fcinfo, VIEWS_API_1_0);
}

Datum
pg_walvault_stats_1_1(PG_FUNCTION_ARGS)
{
	return views_stats(fcinfo, VIEWS_API_1_1);
}

static Datum
views_stats(FunctionCallInfo fcinfo, ViewsApiVersion api)
{
	TupleDesc	tupdesc;
	Datum		values[VIEWS_STATS_COLS];
	bool		nulls[VIEWS_STATS_COLS] = {0};
	WalvaultDsm *dsm;
	WalvaultStats stats;
	WalvaultCounters counters;
	TimestampTz now = GetCurrentTimestamp();
	int64		in_progress = 0;
	int32		active_workers = 0;
	int64		pending;
	uint64		lag;
	int			c;

	walvault_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	dsm = walvault_dsm_attach();
	walvault_pending(dsm, walvault_wal_position(), &pending, &lag);

	/* counters since the last reset, all from one copy */
	walvault_stats_copy(&stats);
	walvault_counters_diff(&stats.total, &stats.reset_base, &counters);

	if (dsm != NULL)
	{
		WalvaultCensus census;

		LWLockAcquire(walvault_shared->lock, LW_SHARED);
		walvault_census(dsm, &census);
		LWLockRelease(walvault_shared->lock);
		in_progress = census.in_progress;
		active_workers = census.attached;
	}

	if (tupdesc->natts != (api == VIEWS_API_1_0 ?
						   VIEWS_STATS_COLS_1_0 : VIEWS_STATS_COLS))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_walvault_stats() does not match the installed pg_walvault library"),
				 errhint("Run ALTER EXTENSION pg_walvault UPDATE.")));

	c = 0;
	values[c++] = Int64GetDatum((int64) counters.archived_count);
	values[c++] = Int64GetDatum((int64) counters.archived_bytes);
	if (api >= VIEWS_API_1_1)
		values[c++] = Int64GetDatum((int64) counters.stored_bytes);
	values[c++] = Int64GetDatum((int64) counters.failed_count);
	values[c] = views_text_or_null(stats.last_archived_wal, &nulls[c]);
	c++;
	values[c] = views_time_or_null(stats.last_archived_time, &nulls[c]);
	c++;
	values[c] = views_text_or_null(stats.last_failed_wal, &nulls[c]);
	c++;
	values[c] = views_time_or_null(stats.last_failed_time, &nulls[c]);
	c++;
	values[c] = views_text_or_null(stats.last_error, &nulls[c]);
	c++;
	values[c++] = Int64GetDatum(pending);
	values[c++] = Int64GetDatum(in_progress);
	values[c++] = Int32GetDatum(active_workers);
	values[c] = views_rate(now, 60, &nulls[c]);
	c++;
	values[c] = views_rate(now, 300, &nulls[c]);
	c++;
	values[c++] = Int64GetDatum((int64) lag);
	values[c] = views_latency_percentile(counters.latency_hist, 0.50, &nulls[c]);
	c++;
	values[c] = views_latency_percentile(counters.latency_hist, 0.99, &nulls[c]);
	c++;
	values[c++] = TimestampTzGetDatum(stats.stats_reset);
	Assert(c == tupdesc->natts);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * What the workers view shows of a slot, copied by name under the lock: the
 * slot's layout (which ends with the atomics read below) is free to change.
 */
typedef struct ViewsSlotRow
{
	WalvaultRole role;
	WalvaultSlotState state;
	pid_t		pid;
	char		current_file[WALVAULT_FNAME_LEN];
	TimestampTz started_at;
	TimestampTz state_since;
	uint32		restarts;
	char		last_error[WALVAULT_ERROR_LEN];
	TimestampTz last_error_time;
} ViewsSlotRow;

static void
views_copy_slot(const WalvaultSlot *slot, ViewsSlotRow *row)
{
	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	row->role = slot->role;
	row->state = slot->state;
	row->pid = slot->pid;
	strlcpy(row->current_file, slot->current_file, WALVAULT_FNAME_LEN);
	row->started_at = slot->started_at;
	row->state_since = slot->state_since;
	row->restarts = slot->restarts;
	strlcpy(row->last_error, slot->last_error, WALVAULT_ERROR_LEN);
	row->last_error_time = slot->last_error_time;
	LWLockRelease(walvault_shared->lock);
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
		ViewsSlotRow row;
		Datum		values[VIEWS_WORKER_COLS];
		bool		nulls[VIEWS_WORKER_COLS] = {0};

		views_copy_slot(slot, &row);
		if (row.state == WALVAULT_SLOT_FREE)
			continue;

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum(row.pid);
		nulls[1] = (row.pid == 0);
		values[2] = CStringGetTextDatum(walvault_role_name(row.role));
		values[3] = CStringGetTextDatum(walvault_state_name(row.state));
		values[4] = views_text_or_null(row.current_file, &nulls[4]);
		values[5] = views_time_or_null(row.started_at, &nulls[5]);
		values[6] = views_time_or_null(row.state_since, &nulls[6]);
		values[7] = Int64GetDatum(pg_atomic_read_u64(&slot->files_archived));
		values[8] = Int64GetDatum(pg_atomic_read_u64(&slot->bytes_archived));
		values[9] = Int64GetDatum(pg_atomic_read_u64(&slot->failures));
		values[10] = Int32GetDatum(row.restarts);
		values[11] = views_text_or_null(row.last_error, &nulls[11]);
		values[12] = views_time_or_null(row.last_error_time, &nulls[12]);
		if (row.state == WALVAULT_SLOT_STARTING)
			nulls[5] = true;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * One row per sample of the history, oldest first: copied a chunk at a time
 * under the history's lock, turned into tuples without it.
 */
#define VIEWS_HISTORY_CHUNK	4096

Datum
pg_walvault_history(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WalvaultHistoryCursor cursor;
	WalvaultSample *samples;
	int			n;
	int			i;

	walvault_require_preload();
	walvault_init_srf(fcinfo);

	walvault_history_begin(&cursor);
	samples = palloc(sizeof(WalvaultSample) * VIEWS_HISTORY_CHUNK);
	while ((n = walvault_history_fetch(&cursor, samples,
									   VIEWS_HISTORY_CHUNK)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < n; i++)
		{
			WalvaultSample *s = &samples[i];
			Datum		values[VIEWS_HISTORY_COLS];
			bool		nulls[VIEWS_HISTORY_COLS] = {0};

			values[0] = TimestampTzGetDatum(s->sample_time);
			values[1] = Int64GetDatum((int64) s->wal_bytes);
			values[2] = Int64GetDatum((int64) s->archived_count);
			values[3] = Int64GetDatum((int64) s->archived_bytes);
			values[4] = Int64GetDatum((int64) s->stored_bytes);
			values[5] = Int64GetDatum((int64) s->failed_count);
			values[6] = Int64GetDatum(s->pending_count);
			values[7] = Int64GetDatum((int64) s->archive_lag_bytes);
			values[8] = Float8GetDatum(s->interval_secs > 0 ?
									   s->wal_bytes / s->interval_secs : 0);
			values[9] = Float8GetDatum(s->interval_secs > 0 ?
									   s->archived_bytes / s->interval_secs : 0);
			values[10] = Int64GetDatum((int64) s->wal_records);
			values[11] = Int64GetDatum((int64) s->wal_fpi);
			values[12] = Int64GetDatum((int64) s->checkpoints);
			values[13] = Int64GetDatum((int64) s->server_archived_count);
			values[14] = Int64GetDatum((int64) s->server_failed_count);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	}
	pfree(samples);
	PG_RETURN_VOID();
}

/*
 * Reset the cumulative counters (counters.c) and the per-process counts.
 * The history is left alone: its samples were true when taken.
 */
static void
views_reset_counters(void)
{
	WalvaultDsm *dsm = walvault_dsm_attach();
	int			i;

	walvault_counters_reset();
	if (dsm == NULL)
		return;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
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
	LWLockRelease(walvault_shared->lock);
}

/*
 * pg_stat_walvault_reset(target): NULL or 'all', 'counters', 'history'.
 */
Datum
pg_walvault_reset(PG_FUNCTION_ARGS)
{
	char	   *target = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		all = (target == NULL || strcmp(target, "all") == 0);

	walvault_require_preload();
	if (!all && strcmp(target, "counters") != 0 &&
		strcmp(target, "history") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized reset target: \"%s\"", target),
				 errhint("Target must be \"all\", \"counters\" or \"history\", or NULL for all.")));

	if (all || strcmp(target, "counters") == 0)
		views_reset_counters();
	if (all || strcmp(target, "history") == 0)
		walvault_history_clear();

	PG_RETURN_VOID();
}

/*
 * One row: the requests made to the object store (pg_walvault.archive_url)
 * since the last reset, and where they go now.
 */
Datum
pg_walvault_store(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[VIEWS_STORE_COLS];
	bool		nulls[VIEWS_STORE_COLS] = {0};
	WalvaultStats stats;
	WalvaultCounters counters;
	WvS3Config	config;
	char		endpoint[512];
	char		region[64];
	char		err[256];
	int			c = 0;

	walvault_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != VIEWS_STORE_COLS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_walvault_store() does not match the installed pg_walvault library"),
				 errhint("Run ALTER EXTENSION pg_walvault UPDATE.")));

	walvault_stats_copy(&stats);
	walvault_counters_diff(&stats.total, &stats.reset_base, &counters);

	/* where requests go, as a new client would resolve it */
	wv_s3_config_init(&config);
	config.endpoint = walvault_s3_endpoint;
	config.region = walvault_s3_region;
	if (!wv_s3_resolve(&config, endpoint, sizeof(endpoint), region,
					   sizeof(region), err, sizeof(err)))
		endpoint[0] = region[0] = '\0';

	values[c] = views_text_or_null(walvault_archive_url, &nulls[c]);
	c++;
	values[c] = views_text_or_null(endpoint, &nulls[c]);
	c++;
	values[c] = views_text_or_null(region, &nulls[c]);
	c++;
	values[c++] = Int64GetDatum((int64) counters.store_requests);
	values[c++] = Int64GetDatum((int64) counters.store_retries);
	values[c++] = Int64GetDatum((int64) counters.store_failed_requests);
	values[c++] = Int64GetDatum((int64) counters.store_bytes_sent);
	values[c++] = Int64GetDatum((int64) counters.store_bytes_received);
	values[c++] = Int64GetDatum((int64) counters.store_connections);
	nulls[c] = (counters.store_requests == 0);
	values[c++] = Float8GetDatum(counters.store_requests == 0 ? 0 :
								 (double) counters.store_request_us / 1000.0 /
								 counters.store_requests);
	values[c] = views_latency_percentile(counters.store_latency_hist, 0.50,
										 &nulls[c]);
	c++;
	values[c] = views_latency_percentile(counters.store_latency_hist, 0.99,
										 &nulls[c]);
	c++;
	values[c++] = Int64GetDatum((int64) counters.store_request_us / 1000);
	values[c++] = TimestampTzGetDatum(stats.stats_reset);
	Assert(c == VIEWS_STORE_COLS);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

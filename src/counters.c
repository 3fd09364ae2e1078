/*-------------------------------------------------------------------------
 *
 * counters.c
 *	  The cumulative statistics of the fixed block: counted when a file is
 *	  archived or fails, read by the views and the collector, reset, saved.
 *
 * Everything lives in one struct, WalvaultStats, under one spinlock
 * (WalvaultShared->stats_mutex).  Whoever archives a file holds it for a
 * few additions; a reader holds it for one struct copy, so a view never
 * shows an archived_count from before a reset beside an archived_bytes from
 * after it, and the statistics file holds one consistent copy.
 *
 * A reset does not zero the counters.  It moves a base (reset_base) up to
 * the running totals, and the views show the difference.  The totals never
 * go back, so the collector, which turns totals into per-interval deltas,
 * needs no coordination with resets: a sample taken while a reset happens
 * still holds exactly what was archived in its interval.
 *
 * src/counters.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "storage/spin.h"

#include "pg_walvault.h"
#include "s3_client.h"

/* Bucket of the latency histogram for a latency of ms milliseconds. */
static int
cnt_latency_bucket(int64 ms)
{
	int			bucket = 0;

	while (ms > 0 && bucket < WALVAULT_LATENCY_BUCKETS - 1)
	{
		ms >>= 1;
		bucket++;
	}
	return bucket;
}

/* Fresh statistics: nothing counted, counting from now. */
void
walvault_stats_init(WalvaultStats *stats)
{
	memset(stats, 0, sizeof(WalvaultStats));
	stats->stats_reset = GetCurrentTimestamp();
}

/* A consistent copy of the statistics. */
void
walvault_stats_copy(WalvaultStats *out)
{
	SpinLockAcquire(&walvault_shared->stats_mutex);
	*out = walvault_shared->stats;
	SpinLockRelease(&walvault_shared->stats_mutex);
}

/* Replace the statistics (with those loaded from the statistics file). */
void
walvault_stats_set(const WalvaultStats *stats)
{
	SpinLockAcquire(&walvault_shared->stats_mutex);
	walvault_shared->stats = *stats;
	SpinLockRelease(&walvault_shared->stats_mutex);
}

/*
 * out = now - base, counter by counter.  A counter below its base (which
 * only a damaged file could cause) counts from zero.
 */
void
walvault_counters_diff(const WalvaultCounters *now, const WalvaultCounters *base,
					   WalvaultCounters *out)
{
#define CNT_DIFF(field) \
	(now->field >= base->field ? now->field - base->field : now->field)
	int			i;

	out->archived_count = CNT_DIFF(archived_count);
	out->archived_bytes = CNT_DIFF(archived_bytes);
	out->stored_bytes = CNT_DIFF(stored_bytes);
	out->failed_count = CNT_DIFF(failed_count);
	for (i = 0; i < WALVAULT_LATENCY_BUCKETS; i++)
		out->latency_hist[i] = CNT_DIFF(latency_hist[i]);
	out->store_requests = CNT_DIFF(store_requests);
	out->store_retries = CNT_DIFF(store_retries);
	out->store_failed_requests = CNT_DIFF(store_failed_requests);
	out->store_bytes_sent = CNT_DIFF(store_bytes_sent);
	out->store_bytes_received = CNT_DIFF(store_bytes_received);
	out->store_connections = CNT_DIFF(store_connections);
	out->store_request_us = CNT_DIFF(store_request_us);
	for (i = 0; i < WALVAULT_LATENCY_BUCKETS; i++)
		out->store_latency_hist[i] = CNT_DIFF(store_latency_hist[i]);
#undef CNT_DIFF
}

/*
 * pg_stat_walvault_reset('counters'): from now on the views count from
 * zero.  The totals, which the collector follows, are left alone.
 */
void
walvault_counters_reset(void)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&walvault_shared->stats_mutex);
	walvault_shared->stats.reset_base = walvault_shared->stats.total;
	walvault_shared->stats.last_archived_wal[0] = '\0';
	walvault_shared->stats.last_archived_time = 0;
	walvault_shared->stats.last_failed_wal[0] = '\0';
	walvault_shared->stats.last_failed_time = 0;
	walvault_shared->stats.last_error[0] = '\0';
	walvault_shared->stats.stats_reset = now;
	SpinLockRelease(&walvault_shared->stats_mutex);
}

/*
 * Collector: take a sample's base.  next comes with wal_position, time and
 * server filled in; its counters are set to the totals now.  It becomes
 * the base of the next sample, and the previous base is returned in prev.
 * Reading the totals and moving the base are one step, so every count lands
 * in exactly one sample.
 */
void
walvault_stats_advance_collector(WalvaultCollectorBase *next,
								 WalvaultCollectorBase *prev)
{
	SpinLockAcquire(&walvault_shared->stats_mutex);
	next->counters = walvault_shared->stats.total;
	*prev = walvault_shared->stats.collector;
	walvault_shared->stats.collector = *next;
	SpinLockRelease(&walvault_shared->stats_mutex);
}

/*
 * Count a file that is now durable in the archive.  ready_since is when the
 * server marked it ready (0 if unknown): the latency from then to now goes
 * into the histogram.
 */
void
walvault_count_success(WalvaultSlot *slot, const char *file, uint64 bytes,
					   uint64 stored, TimestampTz ready_since)
{
	TimestampTz now = GetCurrentTimestamp();
	int			bucket = -1;
	WalvaultStats *stats;

	if (walvault_shared == NULL)
		return;
	if (ready_since != 0 && now >= ready_since)
		bucket = cnt_latency_bucket((now - ready_since) / 1000);

	stats = &walvault_shared->stats;
	SpinLockAcquire(&walvault_shared->stats_mutex);
	stats->total.archived_count++;
	stats->total.archived_bytes += bytes;
	stats->total.stored_bytes += stored;
	if (bucket >= 0)
		stats->total.latency_hist[bucket]++;
	/* keep the newest name: files complete out of order in parallel */
	if (strcmp(file, stats->last_archived_wal) > 0 ||
		stats->last_archived_time == 0)
		strlcpy(stats->last_archived_wal, file, WALVAULT_FNAME_LEN);
	stats->last_archived_time = now;
	SpinLockRelease(&walvault_shared->stats_mutex);

	if (slot != NULL)
	{
		pg_atomic_fetch_add_u64(&slot->files_archived, 1);
		pg_atomic_fetch_add_u64(&slot->bytes_archived, bytes);
	}
}

/* Count a failed attempt, and keep its error for the views. */
void
walvault_count_failure(WalvaultSlot *slot, const char *file,
					   const char *message)
{
	TimestampTz now = GetCurrentTimestamp();
	WalvaultStats *stats;
	char		error[WALVAULT_ERROR_LEN];

	if (walvault_shared == NULL)
		return;
	/* cut outside the locks: it reads the whole message */
	walvault_copy_error(error, message);

	stats = &walvault_shared->stats;
	SpinLockAcquire(&walvault_shared->stats_mutex);
	stats->total.failed_count++;
	strlcpy(stats->last_failed_wal, file, WALVAULT_FNAME_LEN);
	stats->last_failed_time = now;
	strlcpy(stats->last_error, error, WALVAULT_ERROR_LEN);
	SpinLockRelease(&walvault_shared->stats_mutex);

	if (slot != NULL)
	{
		pg_atomic_fetch_add_u64(&slot->failures, 1);
		LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
		strlcpy(slot->last_error, error, WALVAULT_ERROR_LEN);
		slot->last_error_time = now;
		LWLockRelease(walvault_shared->lock);
	}
}

/*
 * Copy message into dst, a buffer of WALVAULT_ERROR_LEN bytes (a view's
 * last_error), cut at a character boundary if it is longer: half a
 * character is invalid text, which convert_to() and every client in
 * another encoding refuse, and with them the whole view.
 *
 * A process connected to a database cuts in the database's encoding
 * (pg_mbcliplen()).  Ours connect to none, and know no encoding but
 * SQL_ASCII, in which pg_mbcliplen() cuts at a byte.  What their messages
 * may hold beyond ASCII is paths and commands from postgresql.conf, as the
 * DBA wrote them, and server messages in the locale's encoding: a message
 * that is valid UTF-8 is cut as UTF-8 (a UTF8 cluster's), any other at a
 * byte (right for a single-byte encoding).
 */
void
walvault_copy_error(char *dst, const char *message)
{
	int			len = strlen(message);
	int			cut;

	if (len < WALVAULT_ERROR_LEN)
		cut = len;
	else if (GetDatabaseEncoding() != PG_SQL_ASCII)
		cut = pg_mbcliplen(message, len, WALVAULT_ERROR_LEN - 1);
	else if (pg_verify_mbstr(PG_UTF8, message, len, true))
		cut = pg_encoding_mbcliplen(PG_UTF8, message, len,
									WALVAULT_ERROR_LEN - 1);
	else
		cut = WALVAULT_ERROR_LEN - 1;
	memcpy(dst, message, cut);
	dst[cut] = '\0';
}

/* Count one attempt of a request to the object store (s3_client.c). */
void
walvault_count_store_request(const struct WvS3RequestInfo *info)
{
	int64		us = (int64) (info->seconds * 1000000.0);
	int			bucket = cnt_latency_bucket(us / 1000);
	WalvaultCounters *total;

	if (walvault_shared == NULL)
		return;
	total = &walvault_shared->stats.total;
	SpinLockAcquire(&walvault_shared->stats_mutex);
	total->store_requests++;
	if (info->retried)
		total->store_retries++;
	if (info->failed)
		total->store_failed_requests++;
	total->store_bytes_sent += info->bytes_sent;
	total->store_bytes_received += info->bytes_received;
	if (info->new_connection)
		total->store_connections++;
	total->store_request_us += us;
	total->store_latency_hist[bucket]++;
	SpinLockRelease(&walvault_shared->stats_mutex);
}

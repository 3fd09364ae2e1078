/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The ring of statistics samples, in a DSM segment of its own, under a
 *	  lock of its own.
 *
 * The ring lives apart from the main segment because its size follows a
 * reloadable setting (pg_walvault.history_size): a new size means a new
 * segment, into which the collector copies the newest samples before it
 * publishes the new handle and unpins the old segment.  Every process maps
 * the current ring lazily and notices a replaced one by its handle, checked
 * under the history lock while it reads.
 *
 * The ring has its own LWLock (WalvaultShared->history_lock) because the
 * work done under it grows with pg_walvault.history_size: reading the whole
 * history copies up to a million samples.  Under the main lock, which every
 * archive worker takes several times per file, such a copy would stall
 * archiving; under this one it can only delay the collector's next append.
 * Every access goes through the functions of this file, which take the
 * lock themselves.
 *
 * src/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "pg_walvault.h"

/* This process's mapping of the ring. */
static dsm_segment *hist_seg = NULL;
static dsm_handle hist_handle = DSM_HANDLE_INVALID;

static WalvaultHistory *hist_current(void);

/* Bytes of dynamic shared memory a ring of capacity samples takes. */
Size
walvault_history_size_bytes(int capacity)
{
	return add_size(offsetof(WalvaultHistory, samples),
					mul_size(sizeof(WalvaultSample), capacity));
}

/*
 * Map the current ring.  Returns NULL if there is none.  Readers go through
 * hist_current() under the lock, since the collector may replace the ring
 * at any time.
 */
WalvaultHistory *
walvault_history_attach(void)
{
	dsm_handle	handle;

	LWLockAcquire(walvault_shared->history_lock, LW_SHARED);
	handle = walvault_shared->history_handle;
	LWLockRelease(walvault_shared->history_lock);

	if (hist_seg != NULL && hist_handle == handle)
		return dsm_segment_address(hist_seg);

	if (hist_seg != NULL)
	{
		dsm_detach(hist_seg);
		hist_seg = NULL;
		hist_handle = DSM_HANDLE_INVALID;
	}
	if (handle == DSM_HANDLE_INVALID)
		return NULL;

	hist_seg = dsm_attach(handle);
	if (hist_seg == NULL)
		return NULL;			/* replaced while we looked */
	dsm_pin_mapping(hist_seg);
	hist_handle = handle;
	return dsm_segment_address(hist_seg);
}

/*
 * The ring to read, or NULL if there is none or it was replaced since we
 * mapped it (the caller then shows nothing rather than wait: the next read
 * maps the new one).  Caller holds the history lock.
 */
static WalvaultHistory *
hist_current(void)
{
	if (hist_seg == NULL || walvault_shared->history_handle != hist_handle)
		return NULL;
	return dsm_segment_address(hist_seg);
}

/*
 * Collector: create a ring of capacity samples, with the newest samples of
 * the current ring (if any), publish it and drop the old one.  Fails with
 * an ERROR when dynamic shared memory has no room for it.
 */
WalvaultHistory *
walvault_history_create(int capacity)
{
	dsm_segment *seg;
	WalvaultHistory *hist;
	WalvaultHistory *old = walvault_history_attach();
	dsm_segment *old_seg = hist_seg;
	dsm_handle	old_handle = hist_handle;

	seg = dsm_create(walvault_history_size_bytes(capacity), 0);
	dsm_pin_segment(seg);
	dsm_pin_mapping(seg);
	hist = dsm_segment_address(seg);
	hist->magic = WALVAULT_HISTORY_MAGIC;
	hist->capacity = capacity;
	hist->next = 0;

	LWLockAcquire(walvault_shared->history_lock, LW_EXCLUSIVE);
	if (old != NULL)
	{
		uint64		n = Min(old->next, (uint64) old->capacity);
		uint64		i;

		n = Min(n, (uint64) capacity);
		for (i = old->next - n; i < old->next; i++)
			hist->samples[hist->next++ % capacity] =
				old->samples[i % old->capacity];
	}
	walvault_shared->history_handle = dsm_segment_handle(seg);
	LWLockRelease(walvault_shared->history_lock);

	if (old_seg != NULL)
	{
		dsm_unpin_segment(old_handle);
		dsm_detach(old_seg);
	}
	hist_seg = seg;
	hist_handle = dsm_segment_handle(seg);
	return hist;
}

/*
 * Collector: append n samples, oldest first, overwriting the oldest ones
 * when the ring is full.
 */
void
walvault_history_append(WalvaultHistory *hist, const WalvaultSample *samples,
						int n)
{
	int			i;

	LWLockAcquire(walvault_shared->history_lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		hist->samples[hist->next % hist->capacity] = samples[i];
		hist->next++;
	}
	LWLockRelease(walvault_shared->history_lock);
}

/*
 * A copy of every sample held, oldest first, palloc'd; *n is set to their
 * number.  NULL (and *n = 0) when there is no ring.
 */
WalvaultSample *
walvault_history_copy(int *n)
{
	WalvaultSample *copy = NULL;
	WalvaultHistory *hist;

	*n = 0;
	if (walvault_history_attach() == NULL)
		return NULL;

	LWLockAcquire(walvault_shared->history_lock, LW_SHARED);
	hist = hist_current();
	if (hist != NULL)
	{
		uint64		count = Min(hist->next, (uint64) hist->capacity);
		uint64		first = hist->next - count;
		uint64		start = first % hist->capacity;
		uint64		head = Min(count, (uint64) hist->capacity - start);

		/* at most two runs: from first to the end of the ring, then from 0 */
		copy = palloc(sizeof(WalvaultSample) * Max(count, 1));
		memcpy(copy, &hist->samples[start], sizeof(WalvaultSample) * head);
		memcpy(copy + head, hist->samples,
			   sizeof(WalvaultSample) * (count - head));
		*n = (int) count;
	}
	LWLockRelease(walvault_shared->history_lock);
	return copy;
}

/*
 * Sum archived bytes and interval lengths over the samples taken after
 * since.  Returns false when there is no sample yet.  Walks back from the
 * newest sample, so the work is bounded by the window, not the ring.
 */
bool
walvault_history_rate(TimestampTz since, double *bytes, double *secs)
{
	WalvaultHistory *hist;
	bool		found = false;

	*bytes = 0;
	*secs = 0;
	if (walvault_history_attach() == NULL)
		return false;

	LWLockAcquire(walvault_shared->history_lock, LW_SHARED);
	hist = hist_current();
	if (hist != NULL)
	{
		uint64		count = Min(hist->next, (uint64) hist->capacity);
		uint64		i;

		for (i = 0; i < count; i++)
		{
			WalvaultSample *s = &hist->samples[(hist->next - 1 - i) % hist->capacity];

			if (s->sample_time <= since)
				break;
			*bytes += s->archived_bytes;
			*secs += s->interval_secs;
			found = true;
		}
	}
	LWLockRelease(walvault_shared->history_lock);
	return found;
}

/* pg_stat_walvault_reset('history'): empty the ring. */
void
walvault_history_clear(void)
{
	WalvaultHistory *hist;

	if (walvault_history_attach() == NULL)
		return;
	LWLockAcquire(walvault_shared->history_lock, LW_EXCLUSIVE);
	hist = hist_current();
	if (hist != NULL)
		hist->next = 0;
	LWLockRelease(walvault_shared->history_lock);
}

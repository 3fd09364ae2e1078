/*-------------------------------------------------------------------------
 *
 * history.c
 *	  The ring of statistics samples, in a DSM segment of its own.
 *
 * The ring lives apart from the main segment because its size follows a
 * reloadable setting (pg_walvault.history_size): a new size means a new
 * segment, into which the collector copies the newest samples before it
 * publishes the new handle and unpins the old segment.  Every process maps
 * the current ring lazily and notices a replaced one by its handle, checked
 * under the lock while it reads.
 *
 * src/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pg_walvault.h"

/* This process's mapping of the ring. */
static dsm_segment *hist_seg = NULL;
static dsm_handle hist_handle = DSM_HANDLE_INVALID;

static Size
hist_size(int capacity)
{
	return add_size(offsetof(WalvaultHistory, samples),
					mul_size(sizeof(WalvaultSample), capacity));
}

/*
 * Map the current ring.  Returns NULL if there is none.  The caller must
 * then take the lock and check walvault_history_is_current() before
 * reading, since the collector may replace the ring at any time.
 */
WalvaultHistory *
walvault_history_attach(void)
{
	dsm_handle	handle;

	LWLockAcquire(walvault_shared->lock, LW_SHARED);
	handle = walvault_shared->history_handle;
	LWLockRelease(walvault_shared->lock);

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

/* Is our mapping the current ring?  Caller holds the lock. */
bool
walvault_history_is_current(void)
{
	return hist_seg != NULL && walvault_shared->history_handle == hist_handle;
}

/*
 * Collector: create a ring of capacity samples, with the newest samples of
 * the current ring (if any), publish it and drop the old one.
 */
WalvaultHistory *
walvault_history_create(int capacity)
{
	dsm_segment *seg;
	WalvaultHistory *hist;
	WalvaultHistory *old = walvault_history_attach();
	dsm_segment *old_seg = hist_seg;
	dsm_handle	old_handle = hist_handle;

	seg = dsm_create(hist_size(capacity), 0);
	dsm_pin_segment(seg);
	dsm_pin_mapping(seg);
	hist = dsm_segment_address(seg);
	hist->magic = WALVAULT_HISTORY_MAGIC;
	hist->capacity = capacity;
	hist->next = 0;

	LWLockAcquire(walvault_shared->lock, LW_EXCLUSIVE);
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
	LWLockRelease(walvault_shared->lock);

	if (old_seg != NULL)
	{
		dsm_unpin_segment(old_handle);
		dsm_detach(old_seg);
	}
	hist_seg = seg;
	hist_handle = dsm_segment_handle(seg);
	return hist;
}

/* Append one sample, overwriting the oldest when full.  Caller holds the lock. */
void
walvault_history_append(WalvaultHistory *hist, const WalvaultSample *sample)
{
	hist->samples[hist->next % hist->capacity] = *sample;
	hist->next++;
}

/* Number of samples held. */
int
walvault_history_count(WalvaultHistory *hist)
{
	return (int) Min(hist->next, (uint64) hist->capacity);
}

/* The i-th sample held, oldest first.  Caller holds the lock. */
WalvaultSample *
walvault_history_get(WalvaultHistory *hist, int i)
{
	uint64		first = hist->next - walvault_history_count(hist);

	return &hist->samples[(first + i) % hist->capacity];
}

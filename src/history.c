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
 * work of reading it grows with pg_walvault.history_size: the whole
 * history is up to a million samples.  Under the main lock, which every
 * archive worker takes several times per file, such a read would stall
 * archiving.  Under this one it can only delay the collector's next
 * append, and not for long: a reader copies HIST_CHUNK samples at a time
 * (a cursor), releasing the lock in between, so that neither its lock hold
 * nor its memory grows with the setting.  Samples are numbered for good
 * (see WalvaultHistory), so a cursor knows when the collector overwrote or
 * a reset dropped samples it had not copied yet, and skips them; a read
 * never shows a sample twice or one torn by the collector.  Every access
 * goes through the functions of this file, which take the lock themselves.
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

/* Samples a cursor copies per lock hold: about 460 kB. */
#define HIST_CHUNK	4096

static WalvaultHistory *hist_current(void);
static uint64 hist_oldest(const WalvaultHistory *hist);
static void hist_copy_out(const WalvaultHistory *hist, uint64 from, uint64 n,
						  WalvaultSample *out);

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

/* Number of the oldest sample the ring holds (next if none). */
static uint64
hist_oldest(const WalvaultHistory *hist)
{
	uint64		oldest = hist->first;

	if (hist->next > (uint64) hist->capacity)
		oldest = Max(oldest, hist->next - hist->capacity);
	return oldest;
}

/* Copy samples number from .. from + n - 1, held by the ring, to out. */
static void
hist_copy_out(const WalvaultHistory *hist, uint64 from, uint64 n,
			  WalvaultSample *out)
{
	uint64		start = from % hist->capacity;
	uint64		head = Min(n, (uint64) hist->capacity - start);

	/* at most two runs: to the end of the ring, then from its start */
	memcpy(out, &hist->samples[start], sizeof(WalvaultSample) * head);
	memcpy(out + head, hist->samples, sizeof(WalvaultSample) * (n - head));
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
	hist->first = 0;

	LWLockAcquire(walvault_shared->history_lock, LW_EXCLUSIVE);
	if (old != NULL)
	{
		uint64		n = Min(old->next - hist_oldest(old), (uint64) capacity);

		hist_copy_out(old, old->next - n, n, hist->samples);
		hist->next = n;
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
 * Begin a read of every sample the ring holds now, oldest first.  Samples
 * appended later are not part of it.
 */
void
walvault_history_begin(WalvaultHistoryCursor *cursor)
{
	WalvaultHistory *hist;

	cursor->handle = DSM_HANDLE_INVALID;
	cursor->pos = cursor->end = 0;
	if (walvault_history_attach() == NULL)
		return;

	LWLockAcquire(walvault_shared->history_lock, LW_SHARED);
	hist = hist_current();
	if (hist != NULL)
	{
		cursor->handle = hist_handle;
		cursor->pos = hist_oldest(hist);
		cursor->end = hist->next;
	}
	LWLockRelease(walvault_shared->history_lock);
}

/*
 * Copy the next samples of a read, at most max, into buf; returns how many
 * (0 at the end).  Samples the collector overwrote or a reset dropped since
 * the read began are skipped; if the ring was replaced (a new size), the
 * read ends there.
 */
int
walvault_history_fetch(WalvaultHistoryCursor *cursor, WalvaultSample *buf,
					   int max)
{
	WalvaultHistory *hist;
	uint64		n = 0;

	if (cursor->pos >= cursor->end)
		return 0;

	LWLockAcquire(walvault_shared->history_lock, LW_SHARED);
	hist = hist_current();
	if (hist == NULL || hist_handle != cursor->handle)
		cursor->pos = cursor->end;
	else
	{
		cursor->pos = Max(cursor->pos, hist_oldest(hist));
		if (cursor->pos < cursor->end)
		{
			n = Min(cursor->end - cursor->pos, (uint64) max);
			hist_copy_out(hist, cursor->pos, n, buf);
			cursor->pos += n;
		}
	}
	LWLockRelease(walvault_shared->history_lock);
	return (int) n;
}

/*
 * A copy of every sample held, oldest first, palloc'd; *n is set to their
 * number.  NULL (and *n = 0) when there is no ring.  Read with a cursor, so
 * the lock is held for one chunk at a time.
 */
WalvaultSample *
walvault_history_copy(int *n)
{
	WalvaultHistoryCursor cursor;
	WalvaultSample *copy;
	int			got;

	*n = 0;
	walvault_history_begin(&cursor);
	if (cursor.handle == DSM_HANDLE_INVALID)
		return NULL;

	copy = palloc(sizeof(WalvaultSample) * Max(cursor.end - cursor.pos, 1));
	while ((got = walvault_history_fetch(&cursor, copy + *n, HIST_CHUNK)) > 0)
		*n += got;
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
		uint64		oldest = hist_oldest(hist);
		uint64		i;

		for (i = hist->next; i > oldest; i--)
		{
			WalvaultSample *s = &hist->samples[(i - 1) % hist->capacity];

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
		hist->first = hist->next;
	LWLockRelease(walvault_shared->history_lock);
}

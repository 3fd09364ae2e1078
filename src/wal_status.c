/*-------------------------------------------------------------------------
 *
 * wal_status.c
 *	  What the server has waiting to be archived: pending files and lag.
 *
 * Read from pg_wal/archive_status, as the server itself does.  A file that
 * a worker archived ahead is still ".ready" until the archiver asks for it,
 * so the queue tells which of the ready files are in fact archived.
 *
 * How far WAL has got depends on what the server is doing.  A primary
 * writes WAL: its insert position moves.  A standby (which archives with
 * archive_mode = always) writes none of its own while in recovery; its
 * insert position stays where recovery started, and the WAL that reaches
 * pg_wal, and the archive, is what the WAL receiver has flushed or what
 * was restored and replayed.
 *
 * src/wal_status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "replication/walreceiver.h"
#include "storage/fd.h"

#include "pg_walvault.h"

/* qsort/bsearch comparator for arrays of file names */
int
walvault_name_cmp(const void *a, const void *b)
{
	return strcmp((const char *) a, (const char *) b);
}

/*
 * The end of the WAL this server has: the insert position on a primary;
 * during recovery, the further of what the WAL receiver has flushed and
 * what recovery has replayed (a standby fed by restore_command alone has
 * no WAL receiver).
 */
XLogRecPtr
walvault_wal_position(void)
{
	XLogRecPtr	received;
	XLogRecPtr	replayed;

	if (!RecoveryInProgress())
		return GetXLogInsertRecPtr();

	received = GetWalRcvFlushRecPtr(NULL, NULL);
	replayed = GetXLogReplayRecPtr(NULL);
	return Max(received, replayed);
}

/*
 * Count the files ready but not yet archived, and compute the archive lag:
 * WAL this server has (up to position, see walvault_wal_position()) that
 * is not yet archived, i.e. from the start of the oldest pending segment,
 * or of the current segment if none is pending.
 */
void
walvault_pending(WalvaultDsm *dsm, XLogRecPtr position,
				 int64 *pending_count, uint64 *lag_bytes)
{
	DIR		   *dir;
	struct dirent *de;
	XLogSegNo	oldest;
	int64		ready = 0;
	XLogRecPtr	lag_start;
	char	  (*done)[WALVAULT_FNAME_LEN] = NULL;
	int			ndone = 0;

	XLByteToSeg(position, oldest, wal_segment_size);

	/* names archived ahead, sorted for lookup */
	if (dsm != NULL)
	{
		WalvaultQueueEntry *queue = walvault_queue(dsm);
		int			i;

		done = palloc(sizeof(*done) * dsm->queue_size);
		LWLockAcquire(walvault_shared->lock, LW_SHARED);
		for (i = 0; i < dsm->queue_size; i++)
			if (queue[i].status == WALVAULT_ENTRY_DONE)
				strlcpy(done[ndone++], queue[i].fname, WALVAULT_FNAME_LEN);
		LWLockRelease(walvault_shared->lock);
		qsort(done, ndone, sizeof(*done), walvault_name_cmp);
	}

	dir = AllocateDir(XLOGDIR "/archive_status");
	while ((de = ReadDir(dir, XLOGDIR "/archive_status")) != NULL)
	{
		size_t		len = strlen(de->d_name);
		char		fname[WALVAULT_FNAME_LEN];

		if (len <= 6 || len - 6 >= WALVAULT_FNAME_LEN ||
			strcmp(de->d_name + len - 6, ".ready") != 0)
			continue;
		memcpy(fname, de->d_name, len - 6);
		fname[len - 6] = '\0';

		if (ndone > 0 &&
			bsearch(fname, done, ndone, sizeof(*done), walvault_name_cmp) != NULL)
			continue;			/* archived ahead */
		ready++;
		if (IsXLogFileName(fname) || IsPartialXLogFileName(fname))
		{
			TimeLineID	tli;
			XLogSegNo	segno;

			XLogFromFileName(fname, &tli, &segno, wal_segment_size);
			if (segno < oldest)
				oldest = segno;
		}
	}
	FreeDir(dir);
	if (done != NULL)
		pfree(done);

	XLogSegNoOffsetToRecPtr(oldest, 0, wal_segment_size, lag_start);
	*pending_count = ready;
	*lag_bytes = position > lag_start ? position - lag_start : 0;
}

/*-------------------------------------------------------------------------
 *
 * wal_status.c
 *	  What the server has waiting to be archived: pending files and lag.
 *
 * Read from pg_wal/archive_status (archive_status.c), as the server itself
 * does, counting only names the server would archive.  A file that
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

#include "pg_walvault.h"
#include "wal_names.h"

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
	WalvaultFileName *ready;
	WalvaultFileName *done = NULL;
	int			nready;
	int			ndone = 0;
	int64		pending = 0;
	XLogSegNo	oldest;
	XLogRecPtr	lag_start;

	XLByteToSeg(position, oldest, wal_segment_size);

	/* names archived ahead, sorted for lookup */
	if (dsm != NULL)
	{
		WalvaultQueueEntry *queue = walvault_queue(dsm);

		done = palloc(sizeof(WalvaultFileName) * dsm->queue_size);
		LWLockAcquire(walvault_shared->lock, LW_SHARED);
		for (int i = 0; i < dsm->queue_size; i++)
			if (queue[i].status == WALVAULT_ENTRY_DONE)
				strlcpy(done[ndone++], queue[i].fname, WALVAULT_FNAME_LEN);
		LWLockRelease(walvault_shared->lock);
		qsort(done, ndone, sizeof(WalvaultFileName), walvault_name_cmp);
	}

	ready = walvault_ready_files(&nready);
	for (int i = 0; i < nready; i++)
	{
		WalvaultFileKind kind = walvault_classify_name(ready[i]);

		if (ndone > 0 &&
			bsearch(ready[i], done, ndone, sizeof(WalvaultFileName),
					walvault_name_cmp) != NULL)
			continue;			/* archived ahead */
		pending++;
		if (kind == WALVAULT_FILE_SEGMENT || kind == WALVAULT_FILE_PARTIAL)
		{
			TimeLineID	tli;
			XLogSegNo	segno;

			XLogFromFileName(ready[i], &tli, &segno, wal_segment_size);
			if (segno < oldest)
				oldest = segno;
		}
	}
	pfree(ready);
	if (done != NULL)
		pfree(done);

	XLogSegNoOffsetToRecPtr(oldest, 0, wal_segment_size, lag_start);
	*pending_count = pending;
	*lag_bytes = position > lag_start ? position - lag_start : 0;
}

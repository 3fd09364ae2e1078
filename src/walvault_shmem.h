/*-------------------------------------------------------------------------
 *
 * walvault_shmem.h
 *	  The shared-memory layout of pg_walvault: who writes what, under which
 *	  lock.
 *
 * There are two pieces of shared memory:
 *
 * 1. A small fixed block (WalvaultShared), requested by _PG_init through
 *	  shmem_request_hook and created by the postmaster.  It holds what must
 *	  exist before any of our processes runs and what must outlive them: the
 *	  named LWLocks, the handle of the DSM segment, and the statistics
 *	  (WalvaultStats: counters, latency histogram, last file archived and
 *	  failed), which the postmaster saves at clean shutdown.
 *
 * 2. A DSM segment, created and pinned by the coordinator, sized from
 *	  max_worker_processes.  It holds the bulky part: one slot per process of
 *	  ours (coordinator, collector, archiver and archive workers) and the
 *	  bounded queue of files handed from the archive module to the workers.
 *	  It is pinned, so it survives a restart of the coordinator; a crash
 *	  restart of the cluster throws it away together with the fixed block.
 *
 * The history ring has a DSM segment of its own (see WalvaultHistory).
 *
 * Locking: three locks, separated by what they protect, so that work
 * proportional to a user setting never delays the archive path.
 *
 * - WalvaultShared->lock (LWLock) protects every non-atomic field of the
 *	 slots and the queue, and the fields of the fixed block that say so.
 *	 Archive workers take it a few times per file; critical sections are a
 *	 handful of loads and stores (scan a small queue, flip a state), never
 *	 I/O.
 * - WalvaultShared->stats_mutex (spinlock) protects WalvaultStats.  Held for
 *	 a few additions when a file is counted, and for one struct copy by a
 *	 reader, so that a reader always sees counters that belong together.
 * - WalvaultShared->history_lock (LWLock) protects the history ring and its
 *	 handle.  Readers copy up to pg_walvault.history_size samples under it;
 *	 only the collector ever waits for them.
 *
 * Per-process counters in the slots are atomics, bumped by their owner
 * without a lock.
 *
 * The group fsync of the archive directory (WalvaultDirSync) has a
 * spinlock of its own: it is taken a few times per archived file, never
 * for longer than a few loads and stores (and a path compared), and never
 * together with the others.
 *
 * src/walvault_shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_SHMEM_H
#define WALVAULT_SHMEM_H

#include "access/xlogdefs.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

/* Longest file name the server hands to an archive module, plus NUL. */
#define WALVAULT_FNAME_LEN		41
/* A file name, as the queue and the lists of ready files hold it. */
typedef char WalvaultFileName[WALVAULT_FNAME_LEN];

/* Room kept for an error message in the views. */
#define WALVAULT_ERROR_LEN		512
/* Latency histogram: bucket i counts files archived in [2^(i-1), 2^i) ms. */
#define WALVAULT_LATENCY_BUCKETS	32

#define WALVAULT_DSM_MAGIC		0x57564C54	/* "WVLT" */

/* Fixed slot numbers; archive workers use the slots from FIRST_WORKER on. */
#define WALVAULT_SLOT_COORDINATOR	0
#define WALVAULT_SLOT_COLLECTOR		1
#define WALVAULT_SLOT_ARCHIVER		2
#define WALVAULT_SLOT_FIRST_WORKER	3

typedef enum WalvaultRole
{
	WALVAULT_ROLE_COORDINATOR,
	WALVAULT_ROLE_COLLECTOR,
	WALVAULT_ROLE_ARCHIVER,
	WALVAULT_ROLE_WORKER
} WalvaultRole;

typedef enum WalvaultSlotState
{
	WALVAULT_SLOT_FREE = 0,		/* no process */
	WALVAULT_SLOT_STARTING,		/* registered by the coordinator, not yet
								 * attached */
	WALVAULT_SLOT_IDLE,			/* attached, waiting for work */
	WALVAULT_SLOT_BUSY			/* archiving current_file */
} WalvaultSlotState;

/*
 * One process of ours.  The coordinator moves a worker slot from FREE to
 * STARTING; from then on the process owns its slot, and its exit callback
 * puts the slot back to FREE.
 */
typedef struct WalvaultSlot
{
	WalvaultRole role;			/* fixed when the segment is created */
	WalvaultSlotState state;	/* owner process, or coordinator (FREE ->
								 * STARTING, and STARTING -> FREE when the
								 * process never attached) */
	uint32		generation;		/* coordinator; bumped at every start, so a
								 * late-starting process can tell its slot
								 * was given away */
	bool		stop_requested; /* coordinator (pool shrink) or the worker
								 * itself (idle retirement) */
	bool		exited_on_error;	/* owner, at exit; coordinator clears it */
	pid_t		pid;			/* owner; 0 when FREE */
	int			pgprocno;		/* owner; latch to wake it, -1 when FREE */
	char		current_file[WALVAULT_FNAME_LEN];	/* owner */
	TimestampTz started_at;		/* owner */
	TimestampTz state_since;	/* owner */
	uint32		restarts;		/* owner's exit callback: exits on error in
								 * this slot, kept across processes */
	char		last_error[WALVAULT_ERROR_LEN]; /* owner */
	TimestampTz last_error_time;	/* owner */
	/* bumped without the lock by the owner, reset when a process attaches */
	pg_atomic_uint64 files_archived;
	pg_atomic_uint64 bytes_archived;
	pg_atomic_uint64 failures;
} WalvaultSlot;

typedef enum WalvaultEntryStatus
{
	WALVAULT_ENTRY_FREE = 0,
	WALVAULT_ENTRY_QUEUED,		/* waiting for a worker */
	WALVAULT_ENTRY_IN_PROGRESS, /* a worker (or the archiver) archives it */
	WALVAULT_ENTRY_DONE,		/* durable in the archive */
	WALVAULT_ENTRY_FAILED		/* the last attempt failed */
} WalvaultEntryStatus;

/*
 * One file handed to the workers; its life is described in queue.c.  The
 * archiver adds entries and frees them; workers move them from QUEUED to
 * IN_PROGRESS to DONE or FAILED.  Under the lock.
 */
typedef struct WalvaultQueueEntry
{
	WalvaultEntryStatus status;
	bool		requested;		/* the archiver is waiting for this one: take
								 * it first, and wake the archiver when done */
	int			slot;			/* slot archiving it, -1 if none */
	uint32		target_hash;	/* walvault_target_hash() when it was
								 * archived: a DONE entry counts only for
								 * where files go now */
	uint64		seq;			/* enqueue order: oldest first */
	WalvaultFileName fname;
} WalvaultQueueEntry;

/* The DSM segment: header, then slots, then the queue. */
typedef struct WalvaultDsm
{
	uint32		magic;
	int			nslots;			/* WALVAULT_SLOT_FIRST_WORKER + workers */
	int			queue_size;
	uint64		next_seq;		/* under lock */
	WalvaultSlot slots[FLEXIBLE_ARRAY_MEMBER];
	/* WalvaultQueueEntry queue[queue_size] follows, see walvault_queue() */
} WalvaultDsm;

/*
 * One sample of the history ring.  Counts are for the interval that ends at
 * sample_time; interval_secs is its length.
 */
typedef struct WalvaultSample
{
	TimestampTz sample_time;
	double		interval_secs;
	uint64		wal_bytes;		/* WAL generated in the interval */
	uint64		archived_count;
	uint64		archived_bytes;
	uint64		stored_bytes;
	uint64		failed_count;
	int64		pending_count;	/* at sample_time */
	uint64		archive_lag_bytes;	/* at sample_time */
	/* from the server's cumulative statistics, for the interval */
	uint64		wal_records;	/* pg_stat_wal */
	uint64		wal_fpi;		/* pg_stat_wal */
	uint64		checkpoints;	/* pg_stat_bgwriter: timed + requested */
	uint64		server_archived_count;	/* pg_stat_archiver */
	uint64		server_failed_count;	/* pg_stat_archiver */
} WalvaultSample;

/* The server's cumulative statistics the collector follows. */
typedef struct WalvaultServerStats
{
	uint64		wal_records;
	uint64		wal_fpi;
	uint64		checkpoints;
	uint64		archived_count;
	uint64		failed_count;
} WalvaultServerStats;

/*
 * The history ring: a DSM segment of its own, created by the collector and
 * replaced by a new one when pg_walvault.history_size changes.  Samples are
 * appended by the collector and cleared by a reset, under
 * WalvaultShared->history_lock.  Sample number i (counting every sample
 * ever appended) is at samples[i % capacity]; the ring holds numbers
 * max(first, next - capacity) to next - 1.  Neither number ever goes back,
 * so a reader that copies a few samples at a time can tell which of the
 * ones it has not copied yet are still there.
 */
typedef struct WalvaultHistory
{
	uint32		magic;
	int			capacity;
	uint64		next;			/* number of the next sample appended */
	uint64		first;			/* oldest number kept: a reset sets it to
								 * next */
	WalvaultSample samples[FLEXIBLE_ARRAY_MEMBER];
} WalvaultHistory;

/* A read of the history, a few samples at a time (history.c). */
typedef struct WalvaultHistoryCursor
{
	dsm_handle	handle;			/* the ring it reads */
	uint64		pos;			/* number of the next sample to copy */
	uint64		end;			/* next when the read began */
} WalvaultHistoryCursor;

#define WALVAULT_HISTORY_MAGIC	0x57564853	/* "WVHS" */

/*
 * The cumulative counters, in one struct: whoever reads them (the views,
 * the collector, the statistics file) copies all of them at once, so that
 * they always belong together, and adding a counter means adding a field
 * here and in walvault_counters_diff() (counters.c).
 */
typedef struct WalvaultCounters
{
	uint64		archived_count; /* files durable in the archive */
	uint64		archived_bytes; /* their size */
	uint64		stored_bytes;	/* bytes written to the archive for them */
	uint64		failed_count;	/* failed attempts */
	uint64		latency_hist[WALVAULT_LATENCY_BUCKETS]; /* ready to durable */
	/* requests to the object store (pg_walvault.archive_url) */
	uint64		store_requests; /* attempts, retries included */
	uint64		store_retries;	/* attempts followed by another */
	uint64		store_failed_requests;	/* attempts that did not succeed */
	uint64		store_bytes_sent;	/* request bodies */
	uint64		store_bytes_received;	/* response bodies */
	uint64		store_connections;	/* connections opened */
	uint64		store_request_us;	/* time spent in requests */
	uint64		store_latency_hist[WALVAULT_LATENCY_BUCKETS];	/* per attempt */
} WalvaultCounters;

/*
 * What the collector saw at its last sample, so that a sample holds what
 * happened since the previous one, across restarts of the collector and of
 * the server.  Written by the collector only.
 */
typedef struct WalvaultCollectorBase
{
	WalvaultCounters counters;	/* WalvaultStats.total */
	XLogRecPtr	wal_position;	/* how far WAL had got */
	TimestampTz time;
	WalvaultServerStats server;
} WalvaultCollectorBase;

/*
 * The statistics of the fixed block, under WalvaultShared->stats_mutex, and
 * saved whole at clean shutdown (stats_file.c).
 *
 * A reset never lowers a counter: it moves reset_base up to total, and the
 * views show total - reset_base.  So the collector's deltas, taken from
 * total alone, are never mixed up with a reset, whenever it happens.
 */
typedef struct WalvaultStats
{
	WalvaultCounters total;		/* since shared memory was created, or since
								 * the run whose file was loaded */
	WalvaultCounters reset_base;	/* total at the last reset */
	char		last_archived_wal[WALVAULT_FNAME_LEN];
	TimestampTz last_archived_time;
	char		last_failed_wal[WALVAULT_FNAME_LEN];
	TimestampTz last_failed_time;
	char		last_error[WALVAULT_ERROR_LEN];
	TimestampTz stats_reset;
	WalvaultCollectorBase collector;
} WalvaultStats;

/*
 * Group fsync of the archive directory (target_directory.c explains the
 * protocol).  A process that has renamed a file into the directory takes
 * a ticket; the file may be reported archived once an fsync of the
 * directory that began after the ticket was taken has succeeded
 * (synced_upto >= ticket).  One process at a time (syncing) fsyncs for
 * everyone holding a ticket.  Tickets are for the directory named dir: a
 * process archiving elsewhere (a reload in between) fsyncs by itself.  In
 * the fixed block, not the DSM segment, so that the archiver archiving by
 * itself (a pool of 0, before the segment exists) takes part too.
 */
typedef struct WalvaultDirSync
{
	slock_t		mutex;			/* protects every field below but cv */
	char		dir[MAXPGPATH]; /* the directory the tickets are for; changed
								 * only when no ticket is outstanding */
	uint64		next_ticket;	/* last ticket handed out */
	uint64		synced_upto;	/* highest ticket a successful fsync covered */
	uint64		failed_upto;	/* highest ticket a failed fsync covered */
	bool		syncing;		/* a leader is fsyncing: set when it takes the
								 * lead, cleared when it publishes */
	ConditionVariable cv;		/* broadcast when synced_upto or failed_upto
								 * move */
} WalvaultDirSync;

/* The fixed block. */
typedef struct WalvaultShared
{
	LWLock	   *lock;			/* the slots, the queue, and what says so */
	LWLock	   *history_lock;	/* history_handle and the ring's samples */
	dsm_handle	handle;			/* coordinator; DSM_HANDLE_INVALID until the
								 * segment exists; under lock */
	int			coordinator_pgprocno;	/* coordinator; -1 when not running;
										 * under lock */
	int			archiver_pgprocno;	/* archive module; -1 when unknown; under
									 * lock */
	bool		spawn_failed;	/* coordinator: the last attempt to start a
								 * worker found no free background worker
								 * slot, so the archiver should not wait;
								 * under lock */

	slock_t		stats_mutex;
	WalvaultStats stats;		/* under stats_mutex */

	dsm_handle	history_handle; /* collector; DSM_HANDLE_INVALID if none;
								 * under history_lock */

	/*
	 * Persistence (stats_file.c): the counters file and the history file
	 * written for one shutdown carry the same token; the history file is
	 * loaded only with the counters file it was written with, so a crash
	 * (which writes no counters file) never brings back old history.
	 */
	uint64		stats_token;	/* set at startup, never changes */
	uint64		loaded_token;	/* token of the counters file loaded at
								 * startup, 0 if none */

	WalvaultDirSync dir_sync;	/* under dir_sync.mutex */
} WalvaultShared;

static inline WalvaultQueueEntry *
walvault_queue(WalvaultDsm *dsm)
{
	return (WalvaultQueueEntry *) ((char *) dsm +
								   MAXALIGN(offsetof(WalvaultDsm, slots) +
											sizeof(WalvaultSlot) * dsm->nslots));
}

#endif							/* WALVAULT_SHMEM_H */

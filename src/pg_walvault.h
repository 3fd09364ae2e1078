/*-------------------------------------------------------------------------
 *
 * pg_walvault.h
 *	  Declarations shared by the files of pg_walvault.
 *
 * The extension is one shared library that plays several roles; its files,
 * by role:
 *
 *	pg_walvault.c		_PG_init: GUCs, shared memory hooks, coordinator
 *	guc.c				the GUCs and their check hooks
 *	shmem.c				fixed block, DSM segment, process slots
 *	counters.c			the cumulative statistics: count, read, reset
 *	queue.c				the queue of files for the workers, the census of the
 *						pool, and who wakes whom
 *	coordinator.c		static background worker: owns the DSM segment and
 *						starts, watches and retires the archive workers
 *	archive_worker.c	dynamic background worker: archives queued files
 *	archiver.c			the archive_library callbacks run by the server's
 *						archiver: hand files to the pool, wait, fallback
 *	archive_status.c	the files the server has marked ready
 *	archive_file.c		archive one file with an error trap, count it
 *	target_directory.c	archiving target: durable copy into
 *						pg_walvault.archive_directory
 *	target_command.c	archiving target: run pg_walvault.archive_command
 *	target_s3.c			archiving target: upload to the object store of
 *						pg_walvault.archive_url
 *	compare.c			is an archived copy the same as the WAL file?
 *	s3_client.c			S3 requests on libcurl, shared with the restore
 *						program
 *	s3_credentials.c	where the S3 credentials come from
 *	codec.c				streaming zstd/lz4/gzip, shared with the restore
 *						program
 *	wal_names.c			which file names are WAL files, shared with the
 *						restore program
 *	collector.c			dynamic background worker: samples statistics
 *						into the history ring
 *	history.c			the history ring, a DSM segment of its own
 *	stats_file.c		statistics saved across clean restarts
 *	wal_status.c		files pending in pg_wal/archive_status, lag
 *	views.c				SQL-callable functions behind the views
 *	wait_events.c		what our processes wait for, in pg_stat_activity
 *	compat.h			every difference between PostgreSQL versions
 *
 * src/pg_walvault.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_WALVAULT_H
#define PG_WALVAULT_H

#include "postmaster/bgworker.h"
#include "codec.h"
#include "walvault_shmem.h"

#define WALVAULT_MAX_READAHEAD		1024
#define WALVAULT_MAX_WORKERS		256
#define WALVAULT_MAX_BATCH			64
/* most WAL a worker archives in one batch: pg_walvault.batch_size */
#define WALVAULT_BATCH_BYTES		(16 * 1024 * 1024)

/*
 * Temporary files in the archive directory are named
 * .FILE.walvault.SYSID.HOST.PID.tmp, or, where that name is taken,
 * .FILE.walvault.SYSID.HOST.PID.NONCE.tmp with 16 random hex digits
 * (target_directory.c); the host name is cut to WALVAULT_HOST_LEN
 * characters.  WALVAULT_TEMP_NAME_LEN is the longest such name.
 */
#define WALVAULT_HOST_LEN			64
#define WALVAULT_TEMP_NAME_LEN \
	(1 + (WALVAULT_FNAME_LEN - 1) + 10 + 20 + 1 + WALVAULT_HOST_LEN + 1 + 10 + \
	 1 + 16 + 4)

/* What our processes wait for (wait_events.c) */
typedef enum WalvaultWaitEvent
{
	WALVAULT_WAIT_WORKER,		/* archiver: for a worker to archive a file */
	WALVAULT_WAIT_IDLE,			/* archive worker: for a file to archive */
	WALVAULT_WAIT_COPY,			/* copying a file into the archive */
	WALVAULT_WAIT_COMPRESS,		/* compressing a file into the archive */
	WALVAULT_WAIT_COMPARE,		/* comparing with a copy already there */
	WALVAULT_WAIT_SYNC,			/* making an archived file durable */
	WALVAULT_WAIT_COMMAND,		/* running pg_walvault.archive_command */
	WALVAULT_WAIT_UPLOAD,		/* uploading a file to the object store */
	WALVAULT_WAIT_STORE_READ,	/* listing or reading the object store */
	WALVAULT_WAIT_COORDINATOR,	/* coordinator: between two rounds */
	WALVAULT_WAIT_COLLECTOR,	/* collector: between two samples */
	WALVAULT_WAIT_COUNT
} WalvaultWaitEvent;

/* pg_walvault.compression, parsed */
typedef struct WalvaultCompression
{
	WalvaultCodecMethod method;
	int			level;			/* the library's scale; 0 = its default */
} WalvaultCompression;

/*
 * Where files go: an archive target, one file per kind (target_*.c), each
 * behind these callbacks.  archive_file.c chooses the target from the
 * settings (the only place that knows the kinds) and calls through them.
 */
typedef struct WalvaultTarget
{
	const char *setting;		/* the GUC that selects it */

	/*
	 * Archive the WAL file at path (relative to the data directory) under
	 * the name file, durably: return only once the archive holds it for
	 * good.  Returns the bytes archived; *stored gets the bytes written to
	 * the archive (0 if an identical copy was there already).  A copy
	 * already in the archive is judged, never overwritten: identical is
	 * success, different an ERROR.  Any failure is an ERROR.
	 */
	uint64		(*archive) (const char *file, const char *path,
							uint64 *stored);

	/*
	 * Undo what a failed or interrupted archive left behind (a temporary
	 * file, a running command).  Safe at any time, from exit callbacks too.
	 */
	void		(*abort) (void);

	/*
	 * Optional (NULL if the target has nothing to share between files):
	 * archive files[] together, as far as that saves work, before a worker
	 * archives each of them with archive(), which then reports what this
	 * made durable without doing it again.  Whatever it leaves undone,
	 * archive() does as usual; an ERROR here only means that.  Called with
	 * every batch a worker takes, so that nothing it kept outlives its
	 * batch; with fewer than two files it must only forget, and never fail.
	 */
	void		(*stage) (WalvaultFileName *files, int nfiles);

	/* Say at elevel what is wrong with its settings now (start, reload). */
	void		(*check) (int elevel);

	/* Remove what processes that died left behind; NULL if nothing. */
	void		(*cleanup) (void);
} WalvaultTarget;

extern const WalvaultTarget walvault_target_directory;
extern const WalvaultTarget walvault_target_command;
extern const WalvaultTarget walvault_target_s3;

/* GUCs (guc.c) */
extern char *walvault_archive_directory;
extern char *walvault_archive_command;
extern char *walvault_archive_url;
extern char *walvault_s3_endpoint;
extern char *walvault_s3_region;
extern int	walvault_s3_uri_style;
extern char *walvault_s3_ca_file;
extern char *walvault_s3_storage_class;
extern int	walvault_s3_connect_timeout;
extern int	walvault_s3_stall_timeout;
extern int	walvault_max_workers;
extern int	walvault_min_workers;
extern int	walvault_worker_idle_timeout;
extern int	walvault_readahead;
extern int	walvault_batch_size;
extern bool walvault_mark_done_ahead;
extern int	walvault_stats_interval;
extern int	walvault_history_size;
extern bool walvault_save_stats;
extern char *walvault_compression_string;
extern WalvaultCompression walvault_compression;

extern void walvault_define_gucs(void);
extern bool walvault_directory_usable(const char *dir, int elevel);
extern int	walvault_effective_max_workers(int nworker_slots);
extern int	walvault_effective_min_workers(int nworker_slots);

/* shmem.c */
extern WalvaultShared *walvault_shared;
extern bool walvault_preloaded;

extern void walvault_shmem_request(void);
extern void walvault_shmem_startup(void);
extern void walvault_require_preload(void);
extern Size walvault_dsm_size(int nslots, int queue_size);
extern void walvault_dsm_init(WalvaultDsm *dsm, int nslots, int queue_size);
extern WalvaultDsm *walvault_dsm_attach(void);
extern WalvaultDsm *walvault_dsm_create(int nslots, int queue_size);
extern int	walvault_worker_slots(WalvaultDsm *dsm);
extern WalvaultSlot *walvault_slot_claim(WalvaultDsm *dsm, int slotno,
										 WalvaultRole role,
										 uint32 generation);
extern void walvault_slot_release(WalvaultDsm *dsm, int slotno, bool error);
extern void walvault_slot_set_state(WalvaultSlot *slot,
									WalvaultSlotState state,
									const char *file);
extern void walvault_set_latch(int pgprocno);
extern const char *walvault_role_name(WalvaultRole role);
extern const char *walvault_state_name(WalvaultSlotState state);

/* counters.c */
extern void walvault_stats_init(WalvaultStats *stats);
extern void walvault_stats_copy(WalvaultStats *out);
extern void walvault_stats_set(const WalvaultStats *stats);
extern void walvault_counters_diff(const WalvaultCounters *now,
								   const WalvaultCounters *base,
								   WalvaultCounters *out);
extern void walvault_counters_reset(void);
extern void walvault_stats_advance_collector(WalvaultCollectorBase *next,
											 WalvaultCollectorBase *prev);
extern void walvault_count_success(WalvaultSlot *slot, const char *file,
								   uint64 bytes, uint64 stored,
								   TimestampTz ready_since);
extern void walvault_count_failure(WalvaultSlot *slot, const char *file,
								   const char *message);
extern void walvault_copy_error(char *dst, const char *message);

/* archive_file.c */
extern bool walvault_archive_file_guarded(const char *file, const char *path,
										  WalvaultSlot *slot);
extern void walvault_trap_error(WalvaultSlot *slot, const char *file,
								MemoryContext context);
extern int	walvault_archive_batch_max(void);
extern void walvault_archive_stage(WalvaultFileName *files, int nfiles,
								   WalvaultSlot *slot);
extern bool walvault_is_archivable_name(const char *file);
extern const WalvaultTarget *walvault_archive_target(int *nset);

/* archive_marker.c, and the object store's half in target_s3.c */
extern void walvault_marker_ensure(const WalvaultTarget *target,
								   const char *file);
extern bool walvault_s3_marker_create(const char *content, char *existing,
									  size_t size, size_t *len, char **where,
									  const char *file);
extern uint32 walvault_target_hash(void);
extern void walvault_check_target(int elevel);
extern void walvault_target_abort(void);
extern void walvault_target_cleanup(void);
extern size_t walvault_read_file(int fd, const char *path, char *buf,
								 size_t len, uint32 wait_event);

/* queue.c */
typedef struct WalvaultCensus
{
	int			queued;			/* entries waiting for a worker */
	int			in_progress;	/* entries being archived */
	int			attached;		/* workers attached, leaving or not */
	int			live;			/* worker slots with a process that stays
								 * (not asked to leave) */
	int			starting;		/* of live: started, not attached yet */
	int			idle;			/* of live: waiting for work */
	int			busy;			/* of live: archiving */
} WalvaultCensus;

typedef enum WalvaultRequest
{
	WALVAULT_REQUEST_DONE,		/* archived ahead: nothing to wait for */
	WALVAULT_REQUEST_QUEUED,	/* queued for the workers */
	WALVAULT_REQUEST_FULL		/* no room in the queue */
} WalvaultRequest;

extern void walvault_census(WalvaultDsm *dsm, WalvaultCensus *census);
extern WalvaultQueueEntry *walvault_queue_find(WalvaultDsm *dsm,
											   const char *fname);
extern WalvaultQueueEntry *walvault_queue_add(WalvaultDsm *dsm,
											  const char *fname);
extern void walvault_queue_free(WalvaultQueueEntry *e);
extern WalvaultRequest walvault_queue_request(WalvaultDsm *dsm,
											  const char *fname,
											  WalvaultQueueEntry **entry);
extern int	walvault_queue_take(WalvaultDsm *dsm, int slotno,
							   WalvaultFileName *fnames, int max);
extern void walvault_queue_finish(WalvaultDsm *dsm, int slotno,
								  const char *fname, bool ok,
								  uint32 target_hash);
extern int	walvault_queue_requeue_slot(WalvaultDsm *dsm, int slotno);
extern void walvault_queue_retarget(WalvaultDsm *dsm, uint32 target_hash);
extern void walvault_queue_wake(WalvaultDsm *dsm);
extern int	walvault_queue_take_done(WalvaultDsm *dsm, uint32 target_hash,
									 WalvaultFileName *done, int max);
extern int	walvault_queue_readahead(WalvaultDsm *dsm, WalvaultFileName *ready,
									 int nready, const char *current,
									 int inflight);

/* archive_status.c */
extern WalvaultFileName *walvault_ready_files(int *nready);
extern int	walvault_name_cmp(const void *a, const void *b);
extern int	walvault_mark_done(WalvaultFileName *files, int nfiles);

/* compare.c */
typedef struct WalvaultCompare WalvaultCompare;

extern WalvaultCompare *walvault_compare_begin(const char *src,
											   const char *archived,
											   WalvaultCodecMethod method);
extern bool walvault_compare_feed(WalvaultCompare *cmp, const char *data,
								  size_t len);
extern bool walvault_compare_end(WalvaultCompare *cmp);
extern void walvault_compare_abort(void);

/* counters.c, for the object store */
struct WvS3RequestInfo;
extern void walvault_count_store_request(const struct WvS3RequestInfo *info);

/* history.c */
extern Size walvault_history_size_bytes(int capacity);
extern WalvaultHistory *walvault_history_attach(void);
extern WalvaultHistory *walvault_history_create(int capacity);
extern void walvault_history_append(WalvaultHistory *hist,
									const WalvaultSample *samples, int n);
extern void walvault_history_begin(WalvaultHistoryCursor *cursor);
extern int	walvault_history_fetch(WalvaultHistoryCursor *cursor,
								   WalvaultSample *buf, int max);
extern WalvaultSample *walvault_history_copy(int *n);
extern bool walvault_history_rate(TimestampTz since, double *bytes,
								  double *secs);
extern void walvault_history_clear(void);

/* stats_file.c */
extern void walvault_stats_load(void);
extern void walvault_stats_save(int code, Datum arg);
extern void walvault_history_save(void);
extern void walvault_history_load(WalvaultHistory *hist);
extern void walvault_history_discard_file(void);

/* wal_status.c */
extern XLogRecPtr walvault_wal_position(void);
extern void walvault_pending(WalvaultDsm *dsm, XLogRecPtr position,
							 int64 *pending_count, uint64 *lag_bytes);

/* collector.c */
extern PGDLLEXPORT void walvault_collector_main(Datum main_arg);
extern void walvault_collector_started(void);
extern void walvault_collector_stopped(WalvaultDsm *dsm);
extern long walvault_collector_delay(void);
extern void walvault_collector_retry_now(void);

/* coordinator.c */
extern void walvault_register_coordinator(void);
extern PGDLLEXPORT void walvault_coordinator_main(Datum main_arg);

/* wait_events.c */
extern uint32 walvault_wait_event(WalvaultWaitEvent event);

/* archive_worker.c */
extern PGDLLEXPORT void walvault_archive_worker_main(Datum main_arg);

#endif							/* PG_WALVAULT_H */

/*-------------------------------------------------------------------------
 *
 * pg_walvault.h
 *	  Declarations shared by the files of pg_walvault.
 *
 * The extension is one shared library that plays several roles:
 *
 *	pg_walvault.c		_PG_init: GUCs, shared memory hooks, coordinator
 *	guc.c				the GUCs and their check hooks
 *	shmem.c				fixed block, DSM segment, process slots
 *	counters.c			the cumulative statistics: count, read, reset
 *	coordinator.c		static background worker: owns the DSM segment and
 *						starts, watches and retires the archive workers
 *	archive_worker.c	dynamic background worker: archives queued files
 *	archive_module.c	the archive_library callbacks run by the archiver:
 *						queue, read-ahead, wait, fallback
 *	archive_file.c		archive one file with an error trap, count it
 *	copy_directory.c	durable copy of one file into archive_directory
 *	archive_command.c	archive one file by running archive_command
 *	codec.c				streaming zstd/lz4/gzip, shared with the restore
 *						program
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

/* Where files go (archive_file.c) */
typedef enum WalvaultTarget
{
	WALVAULT_TARGET_NONE,		/* not configured: the server keeps WAL */
	WALVAULT_TARGET_DIRECTORY,	/* pg_walvault.archive_directory */
	WALVAULT_TARGET_COMMAND,	/* pg_walvault.archive_command */
	WALVAULT_TARGET_BOTH		/* both set: an error for every file */
} WalvaultTarget;

/* GUCs (guc.c) */
extern char *walvault_archive_directory;
extern char *walvault_archive_command;
extern int	walvault_max_workers;
extern int	walvault_min_workers;
extern int	walvault_worker_idle_timeout;
extern int	walvault_readahead;
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

/* archive_file.c */
extern bool walvault_archive_file_guarded(const char *file, const char *path,
										  WalvaultSlot *slot);
extern bool walvault_is_archivable_name(const char *file);
extern WalvaultTarget walvault_archive_target(void);
extern uint32 walvault_target_hash(void);
extern void walvault_check_target(int elevel);

/* archive_command.c */
extern uint64 walvault_run_archive_command(const char *file, const char *path);

/* copy_directory.c */
extern uint64 walvault_copy_to_directory(const char *file, const char *path,
										 const char *dir, uint64 *stored);
extern void walvault_copy_abort(void);
extern void walvault_remove_stale_temp_files(const char *dir);

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
extern int	walvault_name_cmp(const void *a, const void *b);

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

/*-------------------------------------------------------------------------
 *
 * restore.h
 *	  What the files of pg_walvault_restore share.
 *
 * The program is split by role:
 *
 *	pg_walvault_restore.c	main: options, then serial fetch or prefetch client
 *	report.c				messages, exit statuses, the temporary file to remove
 *	wal_check.c				who asks (PG_VERSION, pg_control) and what a
 *							restored file may contain
 *	wal_records.c			the records of a segment and their CRCs
 *	sha256.c				the SHA-256 of a download, for the one stored with it
 *	fetch.c					fetch one file from the archive, checked, durably,
 *							through a source:
 *	source_directory.c		the files of an archive directory (-d)
 *	source_s3.c				the objects of an S3-compatible store (-u)
 *	spool.c					the prefetch spool: layout, lock, sweeping
 *	prefetch_client.c		ask the prefetcher, start it when there is none
 *	prefetcher.c			the detached prefetching process and its workers
 *
 * Like codec.c and wal_names.c, these files include no PostgreSQL header,
 * except wal_records.c and sha256.c: they read WAL records with the
 * server's own definitions and CRC-32C, and hash with its SHA-256
 * (libpgcommon and libpgport are linked for them), and this header declares
 * their state with standard types only.
 *
 * src/restore/restore.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_RESTORE_H
#define WALVAULT_RESTORE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "s3_client.h"
#include "wal_names.h"

#if defined(__GNUC__) || defined(__clang__)
/* __printf__: postgres_fe.h (wal_records.c) makes printf a macro */
#define WV_PRINTF_ATTR(f, a) __attribute__((format(__printf__, f, a)))
#define WV_NORETURN __attribute__((noreturn))
#else
#define WV_PRINTF_ATTR(f, a)
#define WV_NORETURN
#endif

/* where the platform lacks them, the flags are simply not asked for */
#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif
#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif

#define PROGRAM_NAME	"pg_walvault_restore"

/*
 * Exit statuses.  The server treats 1 to 125 as "file not available" (the
 * end of archive recovery, or a standby's cue to try again later), any
 * status above 125 as a reason to stop recovery with FATAL (except 143,
 * 128 + SIGTERM, which it takes for a shutdown request): see
 * RestoreArchivedFile() and wait_result_is_any_signal().  So every error
 * exits with WV_EXIT_FATAL, and only "not in the archive" with 1.
 */
#define WV_EXIT_RESTORED	0
#define WV_EXIT_NOT_FOUND	1
#define WV_EXIT_FATAL		255

/* longest path we build; generous compared to the server's MAXPGPATH */
#define WV_MAXPATH		4096

/* Bounds of restored content (wal_check.c) */
#define WV_WAL_SEG_MIN_SIZE (UINT64_C(1024) * 1024)
#define WV_WAL_SEG_MAX_SIZE (UINT64_C(1024) * 1024 * 1024)
/* a timeline or backup history file larger than this is not one */
#define WV_HISTORY_MAX_SIZE (UINT64_C(1024) * 1024)

/* Limits of the prefetcher's options */
#define WV_MAX_JOBS		64
#define WV_DEFAULT_IDLE_TIMEOUT 60
#define WV_DEFAULT_SPOOL_SIZE (UINT64_C(1024) * 1024 * 1024)

/* Everything the command line says. */
typedef struct RestoreOptions
{
	/* the archive: a directory (-d) or an object store (-u), never both */
	const char *archive_dir;
	const char *archive_url;
	char		s3_bucket[WV_S3_BUCKET_MAX + 1];	/* from archive_url */
	char		s3_prefix[WV_S3_KEY_MAX + 1];
	const char *s3_endpoint;	/* NULL: the client's default */
	const char *s3_region;		/* NULL: the client's default */
	int			s3_uri_style;	/* a WvS3UriStyle, -1: the client's default */
	const char *s3_ca_file;		/* NULL: the system's CAs only */
	long		s3_connect_timeout_ms;	/* 0: the client's default */
	long		s3_stall_timeout_ms;	/* 0: the client's default */

	const char *file_name;
	const char *dest;
	WalvaultFileKind kind;
	int			jobs;			/* 0: no prefetching */
	int			idle_timeout;	/* seconds */
	uint64_t	spool_size;		/* bytes */
	bool		retry_io_errors;
	bool		verbose;
} RestoreOptions;

/* report.c */
typedef enum WvErrorClass
{
	WV_ERROR_USAGE,				/* how we were called */
	WV_ERROR_IO,				/* a system call failed */
	WV_ERROR_CONTENT			/* the archived file is not what it must be */
} WvErrorClass;

extern void wv_set_verbose(bool verbose);
extern bool wv_is_verbose(void);
extern void wv_set_io_errors_not_available(bool on);
extern void wv_verbose(const char *fmt,...) WV_PRINTF_ATTR(1, 2);
extern void wv_warning(const char *fmt,...) WV_PRINTF_ATTR(1, 2);
extern void wv_error(WvErrorClass cls, const char *fmt,...)
			WV_PRINTF_ATTR(2, 3) WV_NORETURN;
extern void wv_usage_error(const char *fmt,...) WV_PRINTF_ATTR(1, 2) WV_NORETURN;
extern void wv_set_error_hint(const char *hint);
extern void wv_temp_set(const char *path);
extern void wv_temp_forget(void);
extern void wv_install_signal_cleanup(void);

/* wal_check.c */
typedef struct WalVersion
{
	int			major;
	uint16_t	page_magic;
} WalVersion;

typedef struct ServerIdentity
{
	const WalVersion *version;	/* never NULL */
	const char *version_source; /* where the version came from */
	bool		have_sysid;
	uint64_t	sysid;
} ServerIdentity;

/*
 * wal_records.c: a walk over the WAL records of one segment (or, for the
 * check of a record that crosses into a segment, over the end of the
 * segments before it), fed raw segment bytes in order.  Declared here with
 * standard types so that WalCheck holds it by value; only wal_records.c
 * looks inside.
 */
typedef struct WalRecordWalk
{
	const char *src_path;		/* for messages */
	int			mode;			/* WALREC_MODE_* in wal_records.c */
	int			state;			/* WALREC_* in wal_records.c */
	uint32_t	blcksz;
	uint32_t	seg_size;
	uint64_t	seg_lsn;		/* WAL location of byte 0 of the segment */
	uint64_t	off;			/* offset in the segment of the next byte */
	unsigned char phdr[48];		/* page header being gathered */
	uint32_t	first_tli;		/* timeline of the segment's first page */
	/* the record being read */
	uint64_t	rec_lsn;
	uint32_t	rec_tot_len;
	uint32_t	rec_have;		/* bytes of it seen */
	unsigned char rec_hdr[24];	/* its fixed header (SizeOfXLogRecord) */
	uint32_t	rec_crc;		/* CRC-32C of its bytes after the header */
	uint64_t	prev_lsn;		/* start of the last whole record, or 0 */
	uint32_t	nrecords;		/* whole records seen */
	/* the head piece: what the segment holds of a record begun before it */
	bool		head_present;
	bool		head_ended;		/* the record ends in this segment */
	uint32_t	head_len;		/* bytes of it in this segment */
	uint32_t	head_left;		/* of those, not yet seen */
	unsigned char head_buf[24]; /* its first bytes: maybe header bytes */
	uint32_t	head_crc;		/* CRC register (from 0) of the rest */
	bool		head_then_zeros;	/* zeroes follow it: it must be a switch */
	bool		first_prev_known;	/* a record begins after the head piece */
	uint64_t	first_prev;		/* and says the previous one began here */
} WalRecordWalk;

extern void walrec_begin_segment(WalRecordWalk *walk, const char *src_path,
								 uint32_t blcksz, uint32_t seg_size,
								 uint64_t segno);
extern void walrec_begin_prefix(WalRecordWalk *walk, const char *src_path,
								uint32_t blcksz, uint32_t seg_size,
								uint64_t start_lsn, bool at_record);
extern void walrec_next_segment(WalRecordWalk *walk, const char *src_path);
extern void walrec_data(WalRecordWalk *walk, const unsigned char *data,
						size_t len);
extern void walrec_end_segment(WalRecordWalk *walk);
extern bool walrec_head_to_check(const WalRecordWalk *walk,
								 uint64_t *start_lsn, bool *start_known);
extern bool walrec_prefix_found(const WalRecordWalk *prefix);
extern bool walrec_prefix_in_head(const WalRecordWalk *prefix);
extern void walrec_check_head(const WalRecordWalk *walk,
							  const WalRecordWalk *prefix,
							  const char *prefix_path);

/*
 * The state of the checks of one restored file, fed its content in pieces
 * as it is written.  A segment is checked page by page; the first page's
 * long header states the segment size, and the content may never exceed
 * it.  History files have a fixed cap.
 */
typedef struct WalCheck
{
	WalvaultFileKind kind;
	const char *src_path;		/* for messages */
	ServerIdentity server;
	uint64_t	limit;			/* most bytes acceptable now */
	uint64_t	extra_limit;	/* another cap (the spool's), 0: none */
	uint64_t	nbytes;			/* content seen */
	/* from the file name (segments) */
	uint32_t	name_tli;
	uint32_t	name_log;
	uint32_t	name_seg;
	/* from the first page's header */
	bool		have_long_header;
	uint32_t	seg_size;
	uint32_t	blcksz;
	uint64_t	segno;
	/* page walk */
	unsigned char hdr[40];		/* header of the page being read */
	size_t		hdr_len;
	uint64_t	page_no;		/* page whose header is in hdr */
	uint32_t	last_tli;
	bool		zero_pages;		/* a zeroed page header was seen */
	/* the records of a full segment */
	bool		walk_records;
	WalRecordWalk records;
} WalCheck;

extern void wv_identify_server(ServerIdentity *server);
extern bool wv_is_valid_segment_size(uint64_t size);
extern void walcheck_init(WalCheck *check, const char *file_name,
						  WalvaultFileKind kind, const char *src_path,
						  uint64_t extra_limit);
extern void walcheck_data(WalCheck *check, const unsigned char *data,
						  size_t len);
extern void walcheck_finish(WalCheck *check);
extern void walcheck_plain_size(const WalCheck *check, uint64_t size);

/*
 * Sources: what fetch.c reads an archived file from.  Every kind of archive
 * stores a file under the same names (walvault_codec_lookup_order,
 * FILE plus walvault_codec_suffix()); a source finds which one holds it, then streams its stored bytes
 * into a WvContentSink, which decompresses, checks and writes them.
 * fetch.c does everything else, whatever the kind.  Errors end the process
 * (report.c), with WV_ERROR_IO for whatever may pass (a mount, the store).
 */

/* A file found in the archive, under one of its names */
typedef struct WvStoredFile
{
	WalvaultCodecMethod method;	/* stored as FILE + its suffix */
	char		name[WALVAULT_MAX_NAME_LEN + 8];	/* file name and suffix */
	uint64_t	size;			/* stored (maybe compressed) bytes */
	char		location[WV_MAXPATH];	/* path or URL, for messages */
} WvStoredFile;

/*
 * Receives the stored bytes.  restart forgets what was received so far (a
 * download retried after a broken connection starts over).
 */
typedef struct WvContentSink
{
	void	   *arg;
	void		(*data) (void *arg, const unsigned char *data, size_t len);
	void		(*restart) (void *arg);
} WvContentSink;

typedef struct RestoreSource RestoreSource;

struct RestoreSource
{
	/* what the archive is, for messages: "archive directory \"/x\"" */
	const char *(*describe) (RestoreSource *source);

	/*
	 * Look file_name up under each of its names; false if it is under none.
	 * Otherwise fill *file with the first name, in lookup order, that holds
	 * it.
	 */
	bool		(*find) (RestoreSource *source, const char *file_name,
						 WvStoredFile *file);

	/*
	 * Deliver the content of the file find() found, in pieces, to sink.
	 * false if it disappeared in between: it is not in the archive any
	 * more.
	 */
	bool		(*read) (RestoreSource *source, const WvStoredFile *file,
						 const WvContentSink *sink);

	/*
	 * Optional: like read(), but only the stored bytes from offset on (a
	 * file stored uncompressed).  NULL: fetch.c reads it all and skips.
	 */
	bool		(*read_from) (RestoreSource *source, const WvStoredFile *file,
							  uint64_t offset, const WvContentSink *sink);

	/*
	 * Optional: the first stored bytes of the file find() found, up to len,
	 * into buf; *got says how many.  false as read() does.  A read() may
	 * follow.
	 */
	bool		(*peek) (RestoreSource *source, const WvStoredFile *file,
						 unsigned char *buf, size_t len, size_t *got);
};

/* sha256.c */
typedef struct WvSha256 WvSha256;

extern WvSha256 *wv_sha256_create(void);
extern void wv_sha256_reset(WvSha256 *h);
extern void wv_sha256_update(WvSha256 *h, const unsigned char *data,
							 size_t len);
extern void wv_sha256_hex(WvSha256 *h, char *hex);
extern void wv_sha256_free(WvSha256 *h);

/* fetch.c */
extern RestoreSource *wv_open_source(const RestoreOptions *opts);
extern void wv_archive_key(const RestoreOptions *opts, char *key,
						   size_t key_size);
extern int	wv_fetch(RestoreSource *source, const char *file_name,
					 WalvaultFileKind kind, const char *dest,
					 uint64_t max_bytes, uint64_t *restored_bytes);
extern void wv_fsync_parent_dir(const char *path);
extern void wv_fetch_in_worker(void);

/* marker.c */
extern void wv_marker_set_required(bool required);
extern bool wv_marker_is_required(void);
extern void wv_marker_check(RestoreSource *source,
							const ServerIdentity *server);

/* source_directory.c */
extern RestoreSource *source_directory_open(const char *archive_dir);

/* source_s3.c */
extern RestoreSource *source_s3_open(const RestoreOptions *opts);

/* spool.c: the layout of the spool, relative to the data directory */
#define WV_SPOOL_DIR		"pg_wal/pg_walvault_spool"
#define WV_SPOOL_LOCK		WV_SPOOL_DIR "/prefetcher.lock"
#define WV_SPOOL_SOCKET		WV_SPOOL_DIR "/prefetcher.sock"
#define WV_TEMP_SUFFIX		".pg_walvault_restore.tmp"

extern bool wv_in_archive_recovery(long *postmaster_pid);
extern long wv_read_postmaster_pid(void);
extern int	spool_lock(void);
extern void spool_unlock_remove(int lock_fd);
extern void spool_remove_orphan(void);
extern bool spool_temp_owner(const char *name, long *pid);
extern bool spool_segment_parse(const char *name, uint32_t seg_size,
								uint32_t *tli, uint64_t *segno);
extern void spool_segment_name(char *out, uint32_t tli, uint64_t segno,
							   uint32_t seg_size);

/* prefetch_client.c */
extern int	prefetch_restore(const RestoreOptions *opts);

/* prefetcher.c */
extern void prefetcher_main(const RestoreOptions *opts, long postmaster_pid,
							int ready_fd) WV_NORETURN;

/* verify.c: --verify, what the command line says beyond RestoreOptions */
typedef enum VerifyFormat
{
	VERIFY_FORMAT_TEXT,
	VERIFY_FORMAT_TSV			/* rows for pg_walvault_verify() */
} VerifyFormat;

typedef struct VerifyOptions
{
	int			jobs;			/* files checked at once */
	VerifyFormat format;
	const char *pgdata;			/* -D or PGDATA, NULL: none */
	bool		have_sysid;		/* --system-identifier */
	uint64_t	sysid;
} VerifyOptions;

/* Exit statuses of --verify; any error that stops it exits with more */
#define VERIFY_EXIT_CLEAN		0
#define VERIFY_EXIT_PROBLEMS	1
#define VERIFY_DEFAULT_JOBS		4

extern void verify_main(RestoreOptions *opts, const VerifyOptions *verify)
			WV_NORETURN;

#endif							/* WALVAULT_RESTORE_H */

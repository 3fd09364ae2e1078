/*-------------------------------------------------------------------------
 *
 * target_s3.c
 *	  Archive one WAL file into the S3-compatible object store of
 *	  pg_walvault.archive_url.
 *
 * Objects are named as files in the archive directory: PREFIX/<file>, plus
 * ".zst", ".lz4" or ".gz" with pg_walvault.compression, so that a prefix
 * synced to a directory restores with -d, and the other way round.  The
 * guarantees are the directory's:
 *
 * - A file counts as archived only once the store acknowledged the whole
 *	 object (a 2xx answer to the PUT).  An upload cut short (a worker
 *	 killed, a connection lost) leaves no object: S3 creates an object only
 *	 from a complete request.
 *
 * - What the store received is what we read: the payload's SHA-256 is
 *	 signed (x-amz-content-sha256), and the store refuses a body that does
 *	 not match it.
 *
 * - Nothing is overwritten.  Before uploading we list the names the
 *	 restore program would read (one ListObjectsV2 request); a copy found is
 *	 read back and compared (compare.c): identical is success, different an
 *	 error that keeps the WAL.  The PUT itself carries If-None-Match: *, so
 *	 a copy written meanwhile by someone else is answered 412 and judged
 *	 the same way.  (A store that ignores If-None-Match would let that
 *	 second writer's copy be replaced; the README says which do.)
 *
 * Memory is bounded whatever the segment size.  The SHA-256 must be known
 * before the request starts, so the payload (the file, or its compressed
 * form) is produced twice when it does not fit in TS3_MEMORY_MAX: once to
 * hash it, once to send it.  When it fits (a 16 MB segment, or its
 * compressed form) it is produced once, kept, and sent from memory, retries
 * included.  So a worker holds at most TS3_MEMORY_MAX of payload, a read
 * buffer and its compressor.
 *
 * Each process keeps one client (one connection, kept alive) for as long
 * as the settings it was made for stay the same.  libcurl calls us back
 * while it transfers (to read the payload, to hand over what it reads);
 * an ERROR must never unwind through it, so those callbacks trap their
 * errors and they are raised again once libcurl has returned.
 *
 * src/target_s3.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/procsignal.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_walvault.h"
#include "s3_client.h"
#include "wal_names.h"

/* Most payload kept in memory (see the header) */
#define TS3_MEMORY_MAX	(16 * 1024 * 1024)
/* Read size of the WAL file */
#define TS3_CHUNK		(256 * 1024)

/* What to upload: the WAL file, compressed or not. */
typedef struct Ts3Payload
{
	const char *path;
	int			fd;
	WalvaultCodec *codec;		/* NULL: sent as it is */
	WalvaultCompression compression;
	uint64		src_size;
	uint64		length;			/* bytes of payload */
	char		sha256[PG_SHA256_DIGEST_LENGTH * 2 + 1];
	pg_cryptohash_ctx *hash;
	/* the whole payload, when it fits */
	bool		in_memory;
	size_t		mem_len;
	size_t		pos;			/* next byte to send */
	/* producing it again, when it did not fit */
	size_t		stage_len;		/* compressed bytes in ts3_stage */
	size_t		stage_pos;		/* of which sent */
	bool		src_done;
	uint64		produced;
	/* an error met in a libcurl callback, raised after it returns */
	ErrorData  *error;
} Ts3Payload;

/* A copy read back from the store, compared with the WAL file */
typedef struct Ts3Existing
{
	WalvaultCompare *cmp;
	ErrorData  *error;
} Ts3Existing;

/* What the current client was made for, and the client */
typedef struct Ts3Settings
{
	char	   *key;			/* every setting, to notice a change */
	char		bucket[WV_S3_BUCKET_MAX + 1];
	char		prefix[WV_S3_KEY_MAX + 1];
	char	   *endpoint;
	char	   *region;
	char	   *ca_file;
	char	   *storage_class;
} Ts3Settings;

static WvS3 *ts3_client = NULL;
static Ts3Settings ts3_settings;
static char *ts3_memory = NULL;
static char *ts3_chunk = NULL;
/* compressed bytes of the second pass, waiting for libcurl */
static char *ts3_stage = NULL;
static size_t ts3_stage_cap = 0;
static WalvaultCodec *ts3_compressors[WALVAULT_CODEC_ZSTD + 1];

/*
 * The SHA-256 context is a resource of the server's cryptohash API, which
 * needs a resource owner: background workers without a transaction have
 * none, so the hash gets one of its own.  ts3_hash is the context while a
 * payload is hashed, freed by ts3_abort() after an error.
 */
static ResourceOwner ts3_owner = NULL;
static pg_cryptohash_ctx *ts3_hash = NULL;

/*
 * A worker reloads the configuration in the middle of a transfer (see
 * ts3_hook_interrupted); the reload is then done again by its main loop
 * after the file, which also requeues what went to a previous target.
 */
static bool ts3_reloaded = false;
static bool ts3_retargeted = false;

static uint64 ts3_archive(const char *file, const char *path,
						  uint64 *stored);
static void ts3_abort(void);
static void ts3_check(int elevel);
static WvS3 *ts3_get_client(void);
static char *ts3_settings_key(void);
static bool ts3_same_settings(void);
static void ts3_end_transfer(void);
static void ts3_hook_sleep(void *arg, long ms);
static bool ts3_hook_interrupted(void *arg);
static void ts3_hook_request_done(void *arg, const WvS3RequestInfo *info);
static int	ts3_find(WvS3 *s3, const char *file);
static uint64 ts3_existing(WvS3 *s3, const char *file, const char *path,
						   WalvaultCodecMethod method);
static bool ts3_existing_write(void *arg, const char *data, size_t len);
static void ts3_prepare(Ts3Payload *payload, const char *path,
						const WalvaultCompression *compression);
static pg_cryptohash_ctx *ts3_hash_begin(void);
static void ts3_hash_end(char *hex);
static bool ts3_hash_sink(void *arg, const char *data, size_t len);
static bool ts3_stage_sink(void *arg, const char *data, size_t len);
static size_t ts3_body_read(void *arg, char *buf, size_t len);
static bool ts3_body_rewind(void *arg);
static size_t ts3_read_file(Ts3Payload *payload, char *buf, size_t len);
static void ts3_codec_start(Ts3Payload *payload);
static void ts3_raise(WvS3Status status, const WvS3Error *err,
					  const char *action, const char *name);
static void ts3_interrupted(const char *name);

const WalvaultTarget walvault_target_s3 = {
	.setting = "pg_walvault.archive_url",
	.archive = ts3_archive,
	.abort = ts3_abort,
	.check = ts3_check,
	.cleanup = NULL,
	.stage = NULL,
};

/*
 * Upload the WAL file at path as PREFIX/file (plus the compression's
 * suffix).  Returns the bytes archived; *stored gets the bytes uploaded.
 */
static uint64
ts3_archive(const char *file, const char *path, uint64 *stored)
{
	WalvaultCompression compression = walvault_compression;
	WvS3	   *s3 = ts3_get_client();
	Ts3Payload	payload;
	WvS3Body	body;
	WvS3Error	err;
	WvS3Status	status;
	char		name[WALVAULT_FNAME_LEN + 8];
	int			method;

	/* the archive carries this system's marker before any file */
	walvault_marker_ensure(&walvault_target_s3, file);

	/* in the archive already, under any name the restore program reads? */
	method = ts3_find(s3, file);
	if (method >= 0)
	{
		*stored = 0;
		return ts3_existing(s3, file, path, (WalvaultCodecMethod) method);
	}

	snprintf(name, sizeof(name), "%s%s", file,
			 walvault_codec_suffix(compression.method));
	ts3_prepare(&payload, path, &compression);

	body.length = payload.length;
	body.sha256_hex = payload.sha256;
	body.arg = &payload;
	body.read = ts3_body_read;
	body.rewind = ts3_body_rewind;

	/* held here by a test, to kill the worker in the middle (17+) */
	walvault_injection_point("walvault-before-upload");

	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_UPLOAD));
	status = wv_s3_put(s3, name, &body, true, &err);
	pgstat_report_wait_end();

	if (payload.error != NULL)
		ReThrowError(payload.error);
	CloseTransientFile(payload.fd);

	switch (status)
	{
		case WV_S3_OK:
			ts3_end_transfer();
			*stored = payload.length;
			return payload.src_size;
		case WV_S3_EXISTS:
			/* written meanwhile by someone else: judged, never replaced */
			*stored = 0;
			return ts3_existing(s3, file, path, compression.method);
		case WV_S3_INTERRUPTED:
			ts3_interrupted(name);
			break;
		default:
			ts3_raise(status, &err, "upload", name);
	}
	return 0;					/* keep the compiler quiet */
}

/*
 * A file is done with, well or not: a reload done during its transfers is
 * done again by the worker's main loop (see ts3_hook_interrupted).
 */
static void
ts3_end_transfer(void)
{
	if (ts3_reloaded)
		ConfigReloadPending = true;
	ts3_reloaded = false;
	ts3_retargeted = false;
}

/*
 * After an error: free the hash of a payload cut short.  There is nothing
 * else to undo: an upload cut short leaves no object.
 */
static void
ts3_abort(void)
{
	ts3_end_transfer();
	if (ts3_hash != NULL)
	{
		ResourceOwner save = CurrentResourceOwner;

		CurrentResourceOwner = ts3_owner;
		pg_cryptohash_free(ts3_hash);
		CurrentResourceOwner = save;
		ts3_hash = NULL;
	}
}

/*
 * Say at elevel what is wrong with the object store's settings now.
 * Credentials are not looked up here (instance metadata would be a network
 * request at every reload): their absence is an error of the first file.
 */
static void
ts3_check(int elevel)
{
	if (walvault_s3_ca_file[0] != '\0' &&
		access(walvault_s3_ca_file, R_OK) != 0)
		ereport(elevel,
				(errcode_for_file_access(),
				 errmsg("pg_walvault.s3_ca_file \"%s\" cannot be read: %m",
						walvault_s3_ca_file),
				 errhint("Archiving to the object store fails until the file can be read; WAL files stay in pg_wal.")));
}

/* Every setting of the object store, in one string, to notice a change */
static char *
ts3_settings_key(void)
{
	return psprintf("%s|%s|%s|%d|%s|%s|%d|%d", walvault_archive_url,
					walvault_s3_endpoint, walvault_s3_region,
					walvault_s3_uri_style, walvault_s3_ca_file,
					walvault_s3_storage_class, walvault_s3_connect_timeout,
					walvault_s3_stall_timeout);
}

/* Are the settings those the client was made for? */
static bool
ts3_same_settings(void)
{
	char	   *key = ts3_settings_key();
	bool		same = (ts3_settings.key != NULL &&
						strcmp(key, ts3_settings.key) == 0);

	pfree(key);
	return same;
}

/*
 * The client for the settings now: the one we have while they are the
 * same (its connection stays open), a new one when they changed.
 */
static WvS3 *
ts3_get_client(void)
{
	WvS3Config	config;
	WvS3Hooks	hooks;
	char	   *key;
	char		err[512];

	key = ts3_settings_key();
	if (ts3_client != NULL && strcmp(key, ts3_settings.key) == 0)
	{
		pfree(key);
		return ts3_client;
	}

	/* the client points into the settings: it goes first */
	wv_s3_free(ts3_client);
	ts3_client = NULL;
	if (ts3_settings.key)
	{
		pfree(ts3_settings.key);
		pfree(ts3_settings.endpoint);
		pfree(ts3_settings.region);
		pfree(ts3_settings.ca_file);
		pfree(ts3_settings.storage_class);
	}
	memset(&ts3_settings, 0, sizeof(ts3_settings));

	/* the check hook accepted it, so this cannot fail but to be sure */
	if (!wv_s3_parse_url(walvault_archive_url, ts3_settings.bucket,
						 sizeof(ts3_settings.bucket), ts3_settings.prefix,
						 sizeof(ts3_settings.prefix), err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid pg_walvault.archive_url \"%s\"",
						walvault_archive_url),
				 errdetail("%s", err)));
	ts3_settings.key = MemoryContextStrdup(TopMemoryContext, key);
	ts3_settings.endpoint = MemoryContextStrdup(TopMemoryContext,
												walvault_s3_endpoint);
	ts3_settings.region = MemoryContextStrdup(TopMemoryContext,
											  walvault_s3_region);
	ts3_settings.ca_file = MemoryContextStrdup(TopMemoryContext,
											   walvault_s3_ca_file);
	ts3_settings.storage_class = MemoryContextStrdup(TopMemoryContext,
													 walvault_s3_storage_class);
	pfree(key);

	wv_s3_config_init(&config);
	config.bucket = ts3_settings.bucket;
	config.prefix = ts3_settings.prefix;
	config.endpoint = ts3_settings.endpoint;
	config.region = ts3_settings.region;
	config.uri_style = (WvS3UriStyle) walvault_s3_uri_style;
	config.ca_file = ts3_settings.ca_file;
	config.storage_class = ts3_settings.storage_class;
	config.connect_timeout_ms = walvault_s3_connect_timeout;
	config.stall_timeout_ms = walvault_s3_stall_timeout;

	memset(&hooks, 0, sizeof(hooks));
	hooks.interrupted = ts3_hook_interrupted;
	hooks.sleep = ts3_hook_sleep;
	hooks.request_done = ts3_hook_request_done;

	ts3_client = wv_s3_create(&config, &hooks, err, sizeof(err));
	if (ts3_client == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not set up the object store client: %s", err)));
	return ts3_client;
}

/*
 * Client hook: must the request stop now?  A shutdown request or a
 * terminate does; a barrier (DROP DATABASE waits for every process to
 * absorb it) is absorbed here, so that it never waits for an upload.
 *
 * A worker also reloads the configuration here, so that a reload is not
 * held up by a slow transfer: if the object store's settings changed, the
 * transfer stops (the file goes to the new place); otherwise it goes on
 * with the new values of everything else.  The worker's main loop reloads
 * again after the file and requeues what went to a previous target.  The
 * archiver does not reload here: it must see archive_library change
 * itself, between two files.
 */
static bool
ts3_hook_interrupted(void *arg)
{
	if (ProcSignalBarrierPending)
		ProcessProcSignalBarrier();
	if (walvault_am_background_worker() && ConfigReloadPending)
	{
		MemoryContext context = CurrentMemoryContext;

		ConfigReloadPending = false;
		ts3_reloaded = true;
		PG_TRY();
		{
			ProcessConfigFile(PGC_SIGHUP);
		}
		PG_CATCH();
		{
			/* we are inside libcurl: report, never unwind */
			MemoryContextSwitchTo(context);
			EmitErrorReport();
			FlushErrorState();
		}
		PG_END_TRY();
		if (!ts3_same_settings())
			ts3_retargeted = true;
	}
	return ProcDiePending || QueryCancelPending || ShutdownRequestPending ||
		ts3_retargeted;
}

/*
 * Client hook: wait between two attempts, in small steps so that a
 * shutdown request is seen at once.  Not on the latch, whose wake-ups
 * belong to the caller's own loop.
 */
static void
ts3_hook_sleep(void *arg, long ms)
{
	while (ms > 0 && !ts3_hook_interrupted(arg))
	{
		long		step = Min(ms, 50);

		pg_usleep(step * 1000L);
		ms -= step;
	}
}

static void
ts3_hook_request_done(void *arg, const WvS3RequestInfo *info)
{
	walvault_count_store_request(info);
}

/*
 * Is the file in the store under a name the restore program reads?
 * Returns the method of the first such name, in its order, or -1.
 */
static int
ts3_find(WvS3 *s3, const char *file)
{
	WvS3Error	err;
	WvS3Status	status;
	WalvaultCodecMethod method;
	uint64_t	size;

	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_STORE_READ));
	status = wv_s3_find_archived(s3, file, &method, &size, &err);
	pgstat_report_wait_end();
	if (status == WV_S3_NOT_FOUND)
		return -1;
	if (status == WV_S3_INTERRUPTED)
		ts3_interrupted(file);
	if (status != WV_S3_OK)
		ts3_raise(status, &err, "list", file);
	return (int) method;
}

/*
 * The file is in the store already, stored with method: success if the
 * object holds the same content (returns the size of the WAL file), an
 * ERROR otherwise.
 */
static uint64
ts3_existing(WvS3 *s3, const char *file, const char *path,
			 WalvaultCodecMethod method)
{
	char		name[WALVAULT_FNAME_LEN + 8];
	Ts3Existing existing;
	WvS3Sink	sink;
	WvS3Error	err;
	WvS3Status	status;
	struct stat st;

	snprintf(name, sizeof(name), "%s%s", file, walvault_codec_suffix(method));
	existing.cmp = walvault_compare_begin(path, name, method);
	existing.error = NULL;
	sink.arg = &existing;
	sink.write = ts3_existing_write;
	sink.reset = NULL;			/* a GET cut short is judged again later */

	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_STORE_READ));
	status = wv_s3_get(s3, name, &sink, &err);
	pgstat_report_wait_end();
	if (existing.error != NULL)
		ReThrowError(existing.error);
	if (status == WV_S3_INTERRUPTED)
		ts3_interrupted(name);
	if (status != WV_S3_OK && status != WV_S3_ABORTED)
		ts3_raise(status, &err, "read back", name);

	if (status == WV_S3_ABORTED ||
		!walvault_compare_end(existing.cmp))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_FILE),
				 errmsg("archive object \"%s\" already exists with different content",
						name),
				 errdetail("The object in %s is never overwritten; the WAL file stays in pg_wal.",
						   wv_s3_describe(s3)),
				 errhint("Check whether another cluster archives to the same prefix.")));

	ts3_end_transfer();
	ereport(DEBUG1,
			(errmsg("archive object \"%s\" already exists with identical content",
					name)));
	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	return (uint64) st.st_size;
}

/* GET sink: compare, trapping errors (we are inside libcurl). */
static bool
ts3_existing_write(void *arg, const char *data, size_t len)
{
	Ts3Existing *existing = (Ts3Existing *) arg;
	MemoryContext context = CurrentMemoryContext;
	volatile bool more = false;

	PG_TRY();
	{
		more = walvault_compare_feed(existing->cmp, data, len);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		existing->error = CopyErrorData();
		FlushErrorState();
		more = false;
	}
	PG_END_TRY();
	return more;
}

/*
 * First pass over the payload: its length and SHA-256, and the payload
 * itself when it fits in memory.  The WAL file stays open for a second
 * pass.
 */
static void
ts3_prepare(Ts3Payload *payload, const char *path,
			const WalvaultCompression *compression)
{
	struct stat st;
	bool		finish = false;

	if (ts3_memory == NULL)
		ts3_memory = MemoryContextAllocHuge(TopMemoryContext, TS3_MEMORY_MAX);
	if (ts3_chunk == NULL)
		ts3_chunk = MemoryContextAlloc(TopMemoryContext, TS3_CHUNK);

	memset(payload, 0, sizeof(*payload));
	payload->path = path;
	payload->compression = *compression;
	payload->in_memory = true;
	payload->fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (payload->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	if (fstat(payload->fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	payload->src_size = (uint64) st.st_size;
#ifdef USE_POSIX_FADVISE
	(void) posix_fadvise(payload->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif

	payload->hash = ts3_hash_begin();
	if (compression->method != WALVAULT_CODEC_NONE)
		ts3_codec_start(payload);

	while (!finish)
	{
		size_t		n;
		const char *err;

		CHECK_FOR_INTERRUPTS();
		n = ts3_read_file(payload, ts3_chunk, TS3_CHUNK);
		if (payload->error != NULL)
			ReThrowError(payload->error);
		finish = (n == 0);
		if (payload->codec == NULL)
			(void) ts3_hash_sink(payload, ts3_chunk, n);
		else
		{
			bool		fed;

			pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_COMPRESS));
			fed = walvault_codec_feed(payload->codec, ts3_chunk, n, finish,
									  ts3_hash_sink, payload, &err);
			pgstat_report_wait_end();
			if (!fed)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not compress file \"%s\" with %s: %s",
								path, walvault_codec_name(compression->method),
								err)));
		}
	}

	ts3_hash_end(payload->sha256);
	payload->hash = NULL;
}

/*
 * Start a SHA-256 in ts3_hash (freed by ts3_hash_end(), or by ts3_abort()
 * after an error).  pg_cryptohash needs a resource owner, which a worker
 * has none of: it gets one of its own.
 */
static pg_cryptohash_ctx *
ts3_hash_begin(void)
{
	ResourceOwner save_owner;

	if (ts3_owner == NULL)
		ts3_owner = ResourceOwnerCreate(NULL, "pg_walvault upload");
	save_owner = CurrentResourceOwner;
	CurrentResourceOwner = ts3_owner;
	ts3_hash = pg_cryptohash_create(PG_SHA256);
	CurrentResourceOwner = save_owner;
	if (ts3_hash == NULL || pg_cryptohash_init(ts3_hash) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute a SHA-256 checksum: %s",
						pg_cryptohash_error(ts3_hash))));
	return ts3_hash;
}

/* Finish ts3_hash into hex (lower case, 64 digits and a NUL), and free it. */
static void
ts3_hash_end(char *hex)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	if (pg_cryptohash_final(ts3_hash, digest, sizeof(digest)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 checksum: %s",
						pg_cryptohash_error(ts3_hash))));
	ts3_abort();
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

/* First pass: hash the payload, and keep it while it fits. */
static bool
ts3_hash_sink(void *arg, const char *data, size_t len)
{
	Ts3Payload *payload = (Ts3Payload *) arg;

	if (len == 0)
		return true;
	if (pg_cryptohash_update(payload->hash, (const uint8 *) data, len) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 checksum: %s",
						pg_cryptohash_error(payload->hash))));
	if (payload->in_memory && payload->mem_len + len <= TS3_MEMORY_MAX)
	{
		memcpy(ts3_memory + payload->mem_len, data, len);
		payload->mem_len += len;
	}
	else
		payload->in_memory = false;
	payload->length += len;
	return true;
}

/* Second pass: compressed bytes wait here until libcurl takes them. */
static bool
ts3_stage_sink(void *arg, const char *data, size_t len)
{
	Ts3Payload *payload = (Ts3Payload *) arg;

	/* what one chunk compresses to: about a chunk, kept for the next */
	if (payload->stage_len + len > ts3_stage_cap)
	{
		size_t		cap = Max(ts3_stage_cap * 2, payload->stage_len + len);

		ts3_stage = ts3_stage ? repalloc(ts3_stage, cap) :
			MemoryContextAlloc(TopMemoryContext, cap);
		ts3_stage_cap = cap;
	}
	memcpy(ts3_stage + payload->stage_len, data, len);
	payload->stage_len += len;
	return true;
}

/*
 * libcurl wants up to len bytes of the payload.  Errors are trapped and
 * kept for after libcurl returns; (size_t) -1 ends the request.
 */
static size_t
ts3_body_read(void *arg, char *buf, size_t len)
{
	Ts3Payload *payload = (Ts3Payload *) arg;
	MemoryContext context = CurrentMemoryContext;
	volatile size_t n = 0;

	if (payload->in_memory)
	{
		n = Min(len, payload->mem_len - payload->pos);
		memcpy(buf, ts3_memory + payload->pos, n);
		payload->pos += n;
		return n;
	}

	PG_TRY();
	{
		if (payload->codec == NULL)
			n = ts3_read_file(payload, buf, len);
		else
		{
			/* compress more until there is something to send, or the end */
			while (payload->stage_pos == payload->stage_len &&
				   !payload->src_done)
			{
				size_t		got;
				const char *err;

				payload->stage_pos = payload->stage_len = 0;
				got = ts3_read_file(payload, ts3_chunk, TS3_CHUNK);
				payload->src_done = (got == 0);
				if (!walvault_codec_feed(payload->codec, ts3_chunk, got,
										 payload->src_done, ts3_stage_sink,
										 payload, &err))
					ereport(ERROR,
							(errcode(ERRCODE_INTERNAL_ERROR),
							 errmsg("could not compress file \"%s\" with %s: %s",
									payload->path,
									walvault_codec_name(payload->compression.method),
									err)));
			}
			n = Min(len, payload->stage_len - payload->stage_pos);
			memcpy(buf, ts3_stage + payload->stage_pos, n);
			payload->stage_pos += n;
		}
		payload->produced += n;
		if (n == 0 && payload->produced != payload->length)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("file \"%s\" changed while it was uploaded",
							payload->path)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		payload->error = CopyErrorData();
		FlushErrorState();
		n = (size_t) -1;
	}
	PG_END_TRY();
	return n;
}

/* Start the payload over, for another attempt. */
static bool
ts3_body_rewind(void *arg)
{
	Ts3Payload *payload = (Ts3Payload *) arg;
	MemoryContext context = CurrentMemoryContext;
	volatile bool ok = true;

	payload->pos = 0;
	if (payload->in_memory)
		return true;

	PG_TRY();
	{
		if (lseek(payload->fd, 0, SEEK_SET) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not seek in file \"%s\": %m",
							payload->path)));
		payload->produced = 0;
		payload->stage_pos = payload->stage_len = 0;
		payload->src_done = false;
		if (payload->codec != NULL)
			ts3_codec_start(payload);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		payload->error = CopyErrorData();
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Read up to len bytes of the WAL file (fewer only at its end). */
static size_t
ts3_read_file(Ts3Payload *payload, char *buf, size_t len)
{
	return walvault_read_file(payload->fd, payload->path, buf, len,
							  walvault_wait_event(WALVAULT_WAIT_COPY));
}

/*
 * The compressor of the payload's method, made once per process, started
 * on a new stream.  The same level and size give the same bytes, which the
 * second pass relies on.
 */
static void
ts3_codec_start(Ts3Payload *payload)
{
	WalvaultCodecMethod method = payload->compression.method;
	const char *err;

	if (ts3_compressors[method] == NULL)
		ts3_compressors[method] = walvault_codec_create(method, true);
	if (ts3_compressors[method] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (!walvault_codec_start(ts3_compressors[method],
							  payload->compression.level,
							  (size_t) payload->src_size, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not start %s compression: %s",
						walvault_codec_name(method), err)));
	payload->codec = ts3_compressors[method];
}

/*
 * A request was interrupted: by a terminate (CHECK_FOR_INTERRUPTS ends
 * us), by a change of the object store's settings, or by a shutdown
 * request, which a worker honours by leaving now (its file goes back to
 * the queue) and the archiver by failing the file.
 */
static void
ts3_interrupted(const char *name)
{
	CHECK_FOR_INTERRUPTS();
	if (ts3_retargeted)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the transfer of \"%s\" was stopped because the object store's settings changed",
						name),
				 errdetail("The file is archived again with the new settings.")));
	if (walvault_am_background_worker() && ShutdownRequestPending)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating the transfer of \"%s\" because of a shutdown request",
						name)));
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("the transfer of \"%s\" was interrupted", name)));
}

/*
 * Raise the ERROR of a failed request: the store's answer in the message
 * (the views show the message), what was tried in the detail, what to do
 * in the hint.
 */
static void
ts3_raise(WvS3Status status, const WvS3Error *err, const char *action,
		  const char *name)
{
	int			sqlstate = ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
	const char *hint;

	if (err->http_status == 0)
	{
		sqlstate = ERRCODE_CONNECTION_FAILURE;
		hint = "Check pg_walvault.s3_endpoint, pg_walvault.s3_ca_file and that the store is reachable; WAL files stay in pg_wal and archiving resumes by itself.";
	}
	else if (strcmp(err->code, "NoSuchBucket") == 0)
	{
		sqlstate = ERRCODE_UNDEFINED_OBJECT;
		hint = "Create the bucket, or correct pg_walvault.archive_url.";
	}
	else if (strcmp(err->code, "SignatureDoesNotMatch") == 0)
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		hint = "Check the secret access key and pg_walvault.s3_region.";
	}
	else if (strcmp(err->code, "InvalidAccessKeyId") == 0)
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		hint = "Check the access key ID in the server's environment or credentials file.";
	}
	else if (err->http_status == 403)
	{
		sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
		hint = "Check the credentials and the bucket's policy.";
	}
	else
		hint = "WAL files stay in pg_wal; archiving resumes by itself once the store answers.";

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("could not %s \"%s\" in %s: %s", action, name,
					ts3_client ? wv_s3_describe(ts3_client) : "the object store",
					err->message),
			 errdetail_plural("%d attempt was made.", "%d attempts were made.",
							  err->attempts, err->attempts),
			 errhint("%s", hint)));
}

/* A marker's content, as a PUT body read from memory */
typedef struct Ts3MemBody
{
	const char *data;
	size_t		len;
	size_t		pos;
} Ts3MemBody;

static size_t
ts3_mem_read(void *arg, char *buf, size_t len)
{
	Ts3MemBody *mem = (Ts3MemBody *) arg;
	size_t		n = Min(len, mem->len - mem->pos);

	memcpy(buf, mem->data + mem->pos, n);
	mem->pos += n;
	return n;
}

static bool
ts3_mem_rewind(void *arg)
{
	((Ts3MemBody *) arg)->pos = 0;
	return true;
}

/* A marker read back: kept up to its buffer's size, the rest ignored */
typedef struct Ts3MemSink
{
	char	   *buf;
	size_t		size;
	size_t		len;
} Ts3MemSink;

static bool
ts3_mem_write(void *arg, const char *data, size_t len)
{
	Ts3MemSink *mem = (Ts3MemSink *) arg;
	size_t		n = Min(len, mem->size - mem->len);

	memcpy(mem->buf + mem->len, data, n);
	mem->len += n;
	return true;
}

static bool
ts3_mem_reset(void *arg)
{
	((Ts3MemSink *) arg)->len = 0;
	return true;
}

/*
 * GET name into existing; false if there is no such object.  A LIST asks
 * first: "not there" is then an answer, not a failed request (404) in
 * pg_stat_walvault_store.
 */
static bool
ts3_marker_get(WvS3 *s3, const char *name, char *existing, size_t size,
			   size_t *len, const char *file)
{
	Ts3MemSink	mem = {existing, size, 0};
	WvS3Sink	sink;
	WvS3Error	err;
	WvS3Status	status;
	WalvaultCodecMethod method;
	uint64_t	stored_size;

	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_STORE_READ));
	status = wv_s3_find_archived(s3, name, &method, &stored_size, &err);
	pgstat_report_wait_end();
	if (status == WV_S3_NOT_FOUND)
		return false;
	if (status == WV_S3_INTERRUPTED)
		ts3_interrupted(file);
	if (status != WV_S3_OK)
		ts3_raise(status, &err, "list", name);
	if (method != WALVAULT_CODEC_NONE)
		return false;			/* only "name.zst" and the like: not it */

	sink.arg = &mem;
	sink.write = ts3_mem_write;
	sink.reset = ts3_mem_reset;
	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_STORE_READ));
	status = wv_s3_get(s3, name, &sink, &err);
	pgstat_report_wait_end();
	if (status == WV_S3_NOT_FOUND)
		return false;
	if (status == WV_S3_INTERRUPTED)
		ts3_interrupted(file);
	if (status != WV_S3_OK)
		ts3_raise(status, &err, "read", name);
	*len = mem.len;
	return true;
}

/*
 * The archive's marker in the object store (archive_marker.c): if there is
 * one, read it into existing (size bytes at most) and return false; if
 * not, upload content, never replacing one written meanwhile, and return
 * true.  *where names the object, for messages.
 */
bool
walvault_s3_marker_create(const char *content, char *existing, size_t size,
						  size_t *len, char **where, const char *file)
{
	WvS3	   *s3 = ts3_get_client();
	char		sha256[2 * PG_SHA256_DIGEST_LENGTH + 1];
	Ts3MemBody	mem = {content, strlen(content), 0};
	WvS3Body	body;
	WvS3Error	err;
	WvS3Status	status;

	*where = psprintf("s3://%s/%s%s%s", ts3_settings.bucket,
					  ts3_settings.prefix, ts3_settings.prefix[0] ? "/" : "",
					  WALVAULT_MARKER_NAME);
	if (ts3_marker_get(s3, WALVAULT_MARKER_NAME, existing, size, len, file))
		return false;

	if (pg_cryptohash_update(ts3_hash_begin(), (const uint8 *) mem.data,
							 mem.len) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 checksum: %s",
						pg_cryptohash_error(ts3_hash))));
	ts3_hash_end(sha256);

	body.length = mem.len;
	body.sha256_hex = sha256;
	body.arg = &mem;
	body.read = ts3_mem_read;
	body.rewind = ts3_mem_rewind;
	status = wv_s3_put(s3, WALVAULT_MARKER_NAME, &body, true, &err);
	if (status == WV_S3_OK)
	{
		ts3_end_transfer();
		return true;
	}
	if (status == WV_S3_INTERRUPTED)
		ts3_interrupted(file);
	if (status != WV_S3_EXISTS)
		ts3_raise(status, &err, "upload", WALVAULT_MARKER_NAME);

	/* another worker was first: its marker is judged */
	if (!ts3_marker_get(s3, WALVAULT_MARKER_NAME, existing, size, len, file))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("archive marker \"%s\" disappeared as it was written",
						*where)));
	return false;
}

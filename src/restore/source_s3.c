/*-------------------------------------------------------------------------
 *
 * source_s3.c
 *	  Restore from an S3-compatible object store (-u s3://BUCKET/PREFIX):
 *	  the source of fetch.c that reads objects.
 *
 * The archive workers store a file as the object PREFIX/<name>, or
 * compressed as PREFIX/<name>.zst, .lz4 or .gz, exactly as in a directory.
 * Requests go through the module's own S3 client (s3_client.h): signed,
 * with a connect and a stall timeout, retried on what may pass.
 *
 * find() costs one request: a ListObjectsV2 of the file's name as a prefix,
 * which answers for the four names at once, with their sizes.  Other
 * objects share that prefix (<segment>.partial, <segment>.<offset>.backup):
 * only the exact names are kept, so that a file is never served under
 * another's name.  Four HEADs would cost four round trips, and a missing
 * file is the common case at the end of the archive.  read() is a GET of
 * the name found, whose body goes piece by piece to fetch.c's sink:
 * nothing but the client's buffer is held in memory, whatever the size.  A
 * GET retried after bytes were delivered starts over through the sink's
 * restart.  The body is hashed on its way: an object stored with the
 * SHA-256 of its content (x-amz-meta-walvault-sha256, every object the
 * module stores since 1.3) must match it, so that a byte changed in the
 * store is found whatever the file (sha256.c); an object stored before has
 * only the checks of its content.  read_from() is a GET with a Range, for
 * the end of a segment (the check of a record that crosses into the next),
 * which the stored hash cannot cover.
 *
 * What the store answers decides the exit status, never a guess: only a
 * list that holds none of the names, or a 404 on the GET of the one it
 * held (removed in between), is "not in the archive".  Everything else,
 * 403, NoSuchBucket, a bad signature, 5xx or 429 once the client gave up
 * retrying, no connection, a timeout, a TLS failure, missing credentials,
 * is an error of class WV_ERROR_IO, that stops recovery (or, with
 * --retry-io-errors on a standby, makes the server ask again), with the
 * HTTP status, the store's error code and the client's message, which
 * never holds a secret.
 *
 * The client's hooks: nothing to poll for an interruption (report.c's
 * handlers end the process on SIGTERM, SIGINT, SIGQUIT and SIGHUP, after
 * removing the temporary file), a plain sleep between retries, and with -v
 * a line for every request, so that retries show in the server log.
 *
 * Each process makes its own client, and so its own connection: the
 * program restores one file, and a prefetcher's worker is a process forked
 * per file (a libcurl handle is never shared across fork()).
 *
 * src/restore/source_s3.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "restore.h"

typedef struct S3Source
{
	RestoreSource source;		/* first: the interface */
	const RestoreOptions *opts;
	WvS3Config	config;
	WvS3	   *s3;
	char		request[128];	/* what is asked now, for -v */
} S3Source;

/* A GET's body, on its way to fetch.c */
typedef struct S3ReadState
{
	const WvContentSink *sink;
	uint64_t	received;
	WvSha256   *hash;			/* NULL: a part of the object */
} S3ReadState;

static void s3src_sleep(void *arg, long ms);
static void s3src_request_done(void *arg, const WvS3RequestInfo *info);
static void s3src_error(S3Source *ss, const char *what, const char *name,
						const WvS3Error *err) WV_NORETURN;
static const char *s3src_describe(RestoreSource *source);
static bool s3src_find(RestoreSource *source, const char *file_name,
					   WvStoredFile *file);
static bool s3src_write(void *arg, const char *data, size_t len);
static bool s3src_reset(void *arg);
static bool s3src_get(S3Source *ss, const WvStoredFile *file,
					  uint64_t offset, const WvContentSink *sink);
static bool s3src_read(RestoreSource *source, const WvStoredFile *file,
					   const WvContentSink *sink);
static bool s3src_read_from(RestoreSource *source, const WvStoredFile *file,
							uint64_t offset, const WvContentSink *sink);
static bool s3src_peek_write(void *arg, const char *data, size_t len);
static bool s3src_peek_reset(void *arg);
static bool s3src_peek(RestoreSource *source, const WvStoredFile *file,
					   unsigned char *buf, size_t len, size_t *got);

/* Between two attempts.  A signal ends the process anyway. */
static void
s3src_sleep(void *arg, long ms)
{
	struct timespec ts;

	(void) arg;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* With -v, one line per attempt: the server log shows retries. */
static void
s3src_request_done(void *arg, const WvS3RequestInfo *info)
{
	S3Source   *ss = (S3Source *) arg;

	if (!wv_is_verbose())
		return;
	if (info->http_status != 0)
		wv_verbose("object store: %s: HTTP %ld in %.3f s, %llu bytes received%s%s",
				   ss->request, info->http_status, info->seconds,
				   (unsigned long long) info->bytes_received,
				   info->new_connection ? " (new connection)" : "",
				   info->retried ? "; trying again" : "");
	else
		wv_verbose("object store: %s: no answer after %.3f s%s",
				   ss->request, info->seconds,
				   info->retried ? "; trying again" : "");
}

/*
 * A request failed: say which, and what the store (or the connection to
 * it) said.  The client's message starts with "HTTP <status> <Code>" when
 * there was an answer.
 */
static void
s3src_error(S3Source *ss, const char *what, const char *name,
			const WvS3Error *err)
{
	wv_error(WV_ERROR_IO, "could not %s \"%s\" in %s: %s (%d attempt%s)",
			 what, name, wv_s3_describe(ss->s3), err->message,
			 err->attempts, err->attempts == 1 ? "" : "s");
}

static const char *
s3src_describe(RestoreSource *source)
{
	return wv_s3_describe(((S3Source *) source)->s3);
}

static bool
s3src_find(RestoreSource *source, const char *file_name, WvStoredFile *file)
{
	S3Source   *ss = (S3Source *) source;
	WvS3Error	err;
	WvS3Status	status;
	uint64_t	size;

	snprintf(ss->request, sizeof(ss->request), "list of \"%s*\"", file_name);
	status = wv_s3_find_archived(ss->s3, file_name, &file->method, &size,
								 &err);
	if (status == WV_S3_NOT_FOUND)
		return false;
	if (status != WV_S3_OK)
		s3src_error(ss, "list the objects named", file_name, &err);

	file->size = size;
	snprintf(file->name, sizeof(file->name), "%s%s",
			 file_name, walvault_codec_suffix(file->method));
	snprintf(file->location, sizeof(file->location), "s3://%s/%s%s%s",
			 ss->opts->s3_bucket, ss->opts->s3_prefix,
			 ss->opts->s3_prefix[0] != '\0' ? "/" : "", file->name);
	return true;
}

static bool
s3src_write(void *arg, const char *data, size_t len)
{
	S3ReadState *rs = (S3ReadState *) arg;

	/* an error in there (corrupt content, a full disk) ends the process */
	rs->sink->data(rs->sink->arg, (const unsigned char *) data, len);
	if (rs->hash != NULL)
		wv_sha256_update(rs->hash, (const unsigned char *) data, len);
	rs->received += len;
	return true;
}

static bool
s3src_reset(void *arg)
{
	S3ReadState *rs = (S3ReadState *) arg;

	rs->sink->restart(rs->sink->arg);
	rs->received = 0;
	if (rs->hash != NULL)
		wv_sha256_reset(rs->hash);
	return true;
}

/*
 * GET the object file found, from byte offset on, into sink.  All of it is
 * hashed and compared with the SHA-256 stored with it, if it has one.
 */
static bool
s3src_get(S3Source *ss, const WvStoredFile *file, uint64_t offset,
		  const WvContentSink *sink)
{
	S3ReadState rs;
	WvS3Sink	s3sink;
	WvS3Error	err;
	WvS3Status	status;
	char		stored[WV_S3_SHA256_HEX_LEN + 1];
	char		received[WV_S3_SHA256_HEX_LEN + 1];

	if (offset > 0 && offset >= file->size)
		return true;			/* nothing to read from there */

	memset(&rs, 0, sizeof(rs));
	rs.sink = sink;
	if (offset == 0)
		rs.hash = wv_sha256_create();
	s3sink.arg = &rs;
	s3sink.write = s3src_write;
	s3sink.reset = s3src_reset;
	snprintf(ss->request, sizeof(ss->request), "GET of \"%s\"%s",
			 file->name, offset > 0 ? " (its end)" : "");
	status = wv_s3_get_from(ss->s3, file->name, offset, 0, &s3sink, stored,
							&err);
	if (status == WV_S3_NOT_FOUND)
	{
		wv_sha256_free(rs.hash);
		return false;
	}
	if (status != WV_S3_OK)
		s3src_error(ss, "download", file->location, &err);

	/* the list said how big it is: a short body is a broken transfer */
	if (rs.received != file->size - offset)
		wv_error(WV_ERROR_IO, "could not download \"%s\" in %s: received %llu bytes, but the object has %llu",
				 file->location, wv_s3_describe(ss->s3),
				 (unsigned long long) (offset + rs.received),
				 (unsigned long long) file->size);

	if (rs.hash != NULL && stored[0] != '\0')
	{
		wv_sha256_hex(rs.hash, received);
		if (strcasecmp(stored, received) != 0)
			wv_error(WV_ERROR_CONTENT,
					 "object \"%s\" does not match the SHA-256 stored with it when it was archived: it was changed in the store (received %s, stored %s)",
					 file->location, received, stored);
		wv_verbose("\"%s\" matches the SHA-256 stored with it",
				   file->location);
	}
	wv_sha256_free(rs.hash);
	return true;
}

static bool
s3src_read(RestoreSource *source, const WvStoredFile *file,
		   const WvContentSink *sink)
{
	return s3src_get((S3Source *) source, file, 0, sink);
}

static bool
s3src_read_from(RestoreSource *source, const WvStoredFile *file,
				uint64_t offset, const WvContentSink *sink)
{
	return s3src_get((S3Source *) source, file, offset, sink);
}

/* The first bytes of an object: a GET with a Range */
typedef struct S3PeekState
{
	unsigned char *buf;
	size_t		len;
	size_t		got;
} S3PeekState;

static bool
s3src_peek_write(void *arg, const char *data, size_t len)
{
	S3PeekState *ps = (S3PeekState *) arg;
	size_t		n = len < ps->len - ps->got ? len : ps->len - ps->got;

	memcpy(ps->buf + ps->got, data, n);
	ps->got += n;
	return true;
}

static bool
s3src_peek_reset(void *arg)
{
	((S3PeekState *) arg)->got = 0;
	return true;
}

static bool
s3src_peek(RestoreSource *source, const WvStoredFile *file,
		   unsigned char *buf, size_t len, size_t *got)
{
	S3Source   *ss = (S3Source *) source;
	S3PeekState ps = {buf, len, 0};
	WvS3Sink	s3sink;
	WvS3Error	err;
	WvS3Status	status;

	*got = 0;
	if (file->size == 0)
		return true;
	s3sink.arg = &ps;
	s3sink.write = s3src_peek_write;
	s3sink.reset = s3src_peek_reset;
	snprintf(ss->request, sizeof(ss->request), "GET of \"%s\" (its start)",
			 file->name);
	status = wv_s3_get_from(ss->s3, file->name, 0, len, &s3sink, NULL, &err);
	if (status == WV_S3_NOT_FOUND)
		return false;
	if (status != WV_S3_OK)
		s3src_error(ss, "download", file->location, &err);
	*got = ps.got;
	return true;
}

RestoreSource *
source_s3_open(const RestoreOptions *opts)
{
	S3Source   *ss = calloc(1, sizeof(S3Source));
	WvS3Hooks	hooks;
	char		err[256];

	if (ss == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	ss->source.describe = s3src_describe;
	ss->source.find = s3src_find;
	ss->source.read = s3src_read;
	ss->source.read_from = s3src_read_from;
	ss->source.peek = s3src_peek;
	ss->opts = opts;

	/* what the options leave out, the client's defaults and environment */
	wv_s3_config_init(&ss->config);
	ss->config.bucket = opts->s3_bucket;
	ss->config.prefix = opts->s3_prefix;
	if (opts->s3_endpoint != NULL)
		ss->config.endpoint = opts->s3_endpoint;
	if (opts->s3_region != NULL)
		ss->config.region = opts->s3_region;
	if (opts->s3_uri_style >= 0)
		ss->config.uri_style = (WvS3UriStyle) opts->s3_uri_style;
	if (opts->s3_ca_file != NULL)
		ss->config.ca_file = opts->s3_ca_file;
	if (opts->s3_connect_timeout_ms > 0)
		ss->config.connect_timeout_ms = opts->s3_connect_timeout_ms;
	if (opts->s3_stall_timeout_ms > 0)
		ss->config.stall_timeout_ms = opts->s3_stall_timeout_ms;

	/*
	 * The client asks libcurl not to touch signals (CURLOPT_NOSIGNAL), so
	 * libcurl does not ignore SIGPIPE around its calls either, and a TLS
	 * library may write to the socket without MSG_NOSIGNAL: a store closing
	 * the connection could kill us with SIGPIPE, which the server would
	 * report as a signal instead of our message.  We write to no pipe whose
	 * reader's death should end us.
	 */
	signal(SIGPIPE, SIG_IGN);

	memset(&hooks, 0, sizeof(hooks));
	hooks.arg = ss;
	hooks.sleep = s3src_sleep;
	hooks.request_done = s3src_request_done;

	/* no request yet: credentials are looked up at the first one */
	ss->s3 = wv_s3_create(&ss->config, &hooks, err, sizeof(err));
	if (ss->s3 == NULL)
		wv_error(WV_ERROR_USAGE, "could not set up the object store client for %s: %s",
				 opts->archive_url, err);
	return &ss->source;
}

/*-------------------------------------------------------------------------
 *
 * s3_client.h
 *	  A small S3 client on libcurl, shared by the module's object-store
 *	  target and pg_walvault_restore.
 *
 * Like codec.c, the client includes no PostgreSQL header, so that the
 * archive workers and the restore program speak to the store with the same
 * code.  What differs between the two is given as hooks: how to tell that
 * the caller must stop (a backend's pending interrupt), how to sleep
 * between retries (a backend waits on its latch), and what to do with the
 * statistics of each request.
 *
 * One WvS3 is one connection to the store, kept alive across requests (a
 * worker archives file after file over it), with the configuration and the
 * credentials it signs with.  Requests are signed with AWS Signature
 * Version 4 by libcurl (CURLOPT_AWS_SIGV4); the payload's SHA-256 is part
 * of the signature, so the store refuses a body changed in transit.
 *
 * Every request has a connect timeout and a stall timeout, and is retried
 * with exponential backoff on what may pass (a connection refused, reset
 * or timed out, HTTP 5xx, 429); never on what will not (403, 404, 400,
 * 412).  Errors come back in a WvS3Error: the HTTP status, the store's
 * error code (AccessDenied, NoSuchBucket, SignatureDoesNotMatch, ...) and a
 * message to show.  No credential ever appears in one.
 *
 * src/s3_client.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_S3_CLIENT_H
#define WALVAULT_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* The URL scheme of pg_walvault.archive_url and of -u */
#define WV_S3_URL_SCHEME	"s3://"

#define WV_S3_BUCKET_MAX	63
#define WV_S3_KEY_MAX		1024
#define WV_S3_CODE_MAX		64
#define WV_S3_MESSAGE_MAX	512
/* the object metadata holding the SHA-256 of what was stored (every PUT) */
#define WV_S3_SHA256_META	"x-amz-meta-walvault-sha256"
#define WV_S3_SHA256_HEX_LEN	64

/* Defaults of the timeouts and of the retries */
#define WV_S3_DEFAULT_CONNECT_TIMEOUT_MS	10000
#define WV_S3_DEFAULT_STALL_TIMEOUT_MS		30000
#define WV_S3_DEFAULT_RETRIES				3

typedef enum WvS3UriStyle
{
	WV_S3_URI_HOST,				/* https://BUCKET.host/KEY (AWS) */
	WV_S3_URI_PATH				/* https://host/BUCKET/KEY (most others) */
} WvS3UriStyle;

/*
 * Where and how to reach the store.  Empty strings (or NULL) mean "from the
 * environment": endpoint from AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL,
 * then AWS's regional endpoint; region from AWS_REGION, then
 * AWS_DEFAULT_REGION, then us-east-1.  The strings are not copied: they
 * must live as long as the client.
 */
typedef struct WvS3Config
{
	const char *bucket;
	const char *prefix;			/* without leading or trailing '/'; may be "" */
	const char *endpoint;
	const char *region;
	WvS3UriStyle uri_style;
	const char *ca_file;		/* added to the system's CAs; "" for none */
	const char *storage_class;	/* x-amz-storage-class of PUTs; "" for none */
	long		connect_timeout_ms;
	long		stall_timeout_ms;	/* no byte moved for this long: give up */
	int			retries;		/* further attempts after a transient error */
} WvS3Config;

/* What one request did, for the caller's statistics. */
typedef struct WvS3RequestInfo
{
	const char *method;			/* "PUT", "GET", "HEAD" or "LIST" */
	long		http_status;	/* 0 if no response */
	double		seconds;		/* from start to end of this attempt */
	uint64_t	bytes_sent;		/* body bytes */
	uint64_t	bytes_received; /* body bytes */
	bool		retried;		/* a retry follows this attempt */
	bool		failed;			/* not a success, whether retried or not */
	bool		new_connection; /* a connection was opened for it */
} WvS3RequestInfo;

typedef struct WvS3Hooks
{
	void	   *arg;
	/* true: abandon the request now (checked during transfers and sleeps) */
	bool		(*interrupted) (void *arg);
	/* sleep ms between two attempts; may return early when interrupted */
	void		(*sleep) (void *arg, long ms);
	/* after each attempt */
	void		(*request_done) (void *arg, const WvS3RequestInfo *info);
} WvS3Hooks;

typedef enum WvS3Status
{
	WV_S3_OK,
	WV_S3_NOT_FOUND,			/* 404: no such key */
	WV_S3_EXISTS,				/* 412 on a conditional PUT: the key exists */
	WV_S3_ABORTED,				/* the sink asked to stop (not an error of
								 * the store) */
	WV_S3_INTERRUPTED,			/* the interrupted hook said so */
	WV_S3_ERROR					/* see WvS3Error */
} WvS3Status;

typedef struct WvS3Error
{
	long		http_status;	/* 0 if no response */
	char		code[WV_S3_CODE_MAX];	/* the store's <Code>, or "" */
	char		message[WV_S3_MESSAGE_MAX]; /* what to show, never a secret */
	bool		transient;		/* worth trying again later */
	int			attempts;		/* how many were made */
} WvS3Error;

/*
 * The body of a PUT, read by the client as it sends: length and SHA-256
 * (lower-case hex) must be known before the request starts.  read returns
 * the bytes copied into buf (0 at the end, (size_t) -1 on error, with a
 * message in the error passed to the PUT); rewind starts over for a retry.
 */
typedef struct WvS3Body
{
	uint64_t	length;
	const char *sha256_hex;
	void	   *arg;
	size_t		(*read) (void *arg, char *buf, size_t len);
	bool		(*rewind) (void *arg);
} WvS3Body;

/*
 * Receives the body of a GET, piece by piece: false stops the transfer
 * (WV_S3_ABORTED).  reset, if not NULL, is called before a retry of a GET
 * that had already delivered bytes, to start over; without it such a GET
 * is not retried.
 */
typedef struct WvS3Sink
{
	void	   *arg;
	bool		(*write) (void *arg, const char *data, size_t len);
	bool		(*reset) (void *arg);
} WvS3Sink;

typedef struct WvS3 WvS3;

/*
 * Parse "s3://BUCKET[/PREFIX]" into bucket and prefix (slashes at the ends
 * of the prefix removed).  Returns false with a reason in err.
 */
extern bool wv_s3_parse_url(const char *url, char *bucket, size_t bucket_size,
							char *prefix, size_t prefix_size,
							char *err, size_t err_size);
extern bool wv_s3_check_endpoint(const char *endpoint, char *err,
								 size_t err_size);
extern bool wv_s3_check_region(const char *region, char *err,
							   size_t err_size);
extern bool wv_s3_check_storage_class(const char *storage_class, char *err,
									  size_t err_size);
extern void wv_s3_config_init(WvS3Config *config);
extern bool wv_s3_resolve(const WvS3Config *config, char *endpoint,
						  size_t endpoint_size, char *region,
						  size_t region_size, char *err, size_t err_size);

/* Once per process, before any other call (libcurl's global state). */
extern bool wv_s3_global_init(char *err, size_t err_size);

/*
 * A client for config; NULL with a reason in err if it cannot be made
 * (out of memory, a bad setting).  Credentials are looked up at the first
 * request.
 */
extern WvS3 *wv_s3_create(const WvS3Config *config, const WvS3Hooks *hooks,
						  char *err, size_t err_size);
extern void wv_s3_free(WvS3 *s3);

/* What the client talks to, for messages: "s3://bucket/prefix at URL" */
extern const char *wv_s3_describe(WvS3 *s3);
/* The effective endpoint and region (after the environment's defaults) */
extern const char *wv_s3_endpoint(WvS3 *s3);
extern const char *wv_s3_region(WvS3 *s3);

/*
 * Requests.  A name is relative to the prefix: "000000010000000000000001"
 * is PREFIX/000000010000000000000001 in the bucket.
 */
extern WvS3Status wv_s3_put(WvS3 *s3, const char *name, const WvS3Body *body,
							bool if_none_match, WvS3Error *err);
extern WvS3Status wv_s3_get(WvS3 *s3, const char *name, const WvS3Sink *sink,
							WvS3Error *err);
extern WvS3Status wv_s3_get_from(WvS3 *s3, const char *name, uint64_t offset,
								 uint64_t length, const WvS3Sink *sink,
								 char *sha256_meta, WvS3Error *err);
extern WvS3Status wv_s3_head(WvS3 *s3, const char *name, uint64_t *size,
							 WvS3Error *err);

/*
 * Every object whose name (relative to the prefix) starts with
 * name_prefix, in the store's order (by name); found is called for each
 * with its name relative to the prefix and its size, and returns false to
 * stop listing.
 */
typedef bool (*WvS3ListCallback) (void *arg, const char *name, uint64_t size);
extern WvS3Status wv_s3_list(WvS3 *s3, const char *name_prefix,
							 WvS3ListCallback found, void *arg,
							 WvS3Error *err);

/*
 * Credentials (s3_credentials.c), looked up in the AWS order: the
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN), the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE
 * or "default"), then EC2 instance metadata (IMDSv2, at
 * AWS_EC2_METADATA_SERVICE_ENDPOINT, unless AWS_EC2_METADATA_DISABLED is
 * true), refreshed before they expire.
 */
#define WV_S3_KEY_ID_MAX	256
#define WV_S3_SECRET_MAX	256
#define WV_S3_TOKEN_MAX		4096

typedef struct WvS3Credentials
{
	char		access_key[WV_S3_KEY_ID_MAX];
	char		secret_key[WV_S3_SECRET_MAX];
	char		token[WV_S3_TOKEN_MAX]; /* "" if none */
	int64_t		expiration;		/* Unix time; 0: does not expire */
	int			source;			/* internal: where they came from */
	int64_t		file_mtime_ns;	/* the credentials file when read */
	char		source_desc[1200];	/* for messages: where they came from */
} WvS3Credentials;

/*
 * Fill creds (kept between calls: they are reused until they change or
 * expire).  Returns false with a reason in err.
 */
extern bool wv_s3_credentials_get(WvS3Credentials *creds,
								  const WvS3Hooks *hooks,
								  char *err, size_t err_size);

/*
 * Which of the names an archived file may have (FILE plus the suffix of
 * each method of walvault_codec_lookup_order) the store holds: the first
 * in that order, with its size.  One ListObjectsV2 request, whose prefix
 * FILE also lists FILE.partial and FILE.*.backup: only exact names count.
 * WV_S3_NOT_FOUND when none is there.
 */
extern WvS3Status wv_s3_find_archived(WvS3 *s3, const char *file,
									  WalvaultCodecMethod *method,
									  uint64_t *size, WvS3Error *err);

/* The lower-case hex SHA-256 of nothing, for requests without a body */
#define WV_S3_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#endif							/* WALVAULT_S3_CLIENT_H */

/*-------------------------------------------------------------------------
 *
 * s3_client.c
 *	  Requests to an S3-compatible object store: PUT, GET, HEAD and
 *	  ListObjectsV2, signed, timed out, retried.
 *
 * The design follows from what the archive needs (s3_client.h says what
 * the caller sees):
 *
 * - One libcurl easy handle per client, reused for every request, so that
 *	 a worker keeps its connection (and its TLS session) from file to file.
 *	 curl_easy_reset() between requests clears the options but keeps the
 *	 connection cache.
 *
 * - Signing is libcurl's (CURLOPT_AWS_SIGV4).  It signs the headers we
 *	 give it, among them x-amz-content-sha256: the SHA-256 of the payload,
 *	 computed by the caller before the request, so that the store checks
 *	 the body it received against the signature and refuses a changed byte.
 *	 libcurl 7.88 does not encode query values for the canonical request,
 *	 so every query value is encoded here, and parameters are given in
 *	 sorted order.
 *
 * - "Expect: 100-continue", which libcurl adds to uploads, stays: libcurl
 *	 7.88 signs the headers it is told to remove, so removing it breaks the
 *	 signature (SignatureDoesNotMatch, measured against RGW).  RGW answers
 *	 100 at once (a 16 MB PUT took the same time with and without waiting
 *	 for it); against a distant store it costs one round trip per PUT.
 *
 * - A request that cannot progress ends: a connect timeout, and a stall
 *	 timeout (fewer than one byte a second for stall_timeout_ms).  The
 *	 caller's interrupted hook is polled during the transfer (libcurl's
 *	 progress callback runs at least once a second), so a worker asked to
 *	 stop does not wait for the store.
 *
 * - A transient failure (no connection, reset, timeout, 5xx, 429) is tried
 *	 again after an exponentially growing, jittered delay; a definite one
 *	 (403, 404, 400, 412) is not.  A GET that had delivered bytes is tried
 *	 again only if the sink can start over.
 *
 * - Error responses are read into a small bounded buffer and only their
 *	 <Code> and <Message> are kept.  No message contains a credential.
 *
 * - Every PUT stores the SHA-256 of its payload as the object's metadata
 *	 (x-amz-meta-walvault-sha256), and a GET hands it back, so that the
 *	 restore program can check every stored byte it downloads, long after
 *	 the store checked the upload.
 *
 * src/s3_client.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "s3_client.h"

/* Bounds of what is kept of a response that is not a GET's body */
#define S3_ERROR_BODY_MAX	(16 * 1024)
#define S3_LIST_BODY_MAX	(8 * 1024 * 1024)
/* Backoff between attempts: S3_BACKOFF_MS * 2^n, at most S3_BACKOFF_MAX_MS */
#define S3_BACKOFF_MS		200
#define S3_BACKOFF_MAX_MS	5000

#define S3_URL_MAX			(2 * WV_S3_KEY_MAX + 1024)

struct WvS3
{
	WvS3Config	config;
	WvS3Hooks	hooks;
	CURL	   *curl;
	char		endpoint[512];	/* effective, without a trailing '/' */
	char		region[64];
	char		scheme_host[512];	/* "https://host[:port]" of requests */
	char		describe[WV_S3_KEY_MAX + 600];
	char		curl_error[CURL_ERROR_SIZE];
	WvS3Credentials creds;
	bool		have_creds;
};

/* A growing buffer with a cap. */
typedef struct S3Buffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		max;
	bool		overflow;
} S3Buffer;

/* The state of one request while libcurl runs it. */
typedef struct S3Request
{
	WvS3	   *s3;
	const char *method;
	const WvS3Body *body;
	bool		body_failed;
	const WvS3Sink *sink;		/* GET: where a 2xx body goes */
	bool		sink_stopped;
	uint64_t	delivered;		/* bytes given to the sink */
	S3Buffer	response;		/* LIST's 2xx body, or an error body */
	bool		interrupted;
	char		sha256_meta[WV_S3_SHA256_HEX_LEN + 1];	/* from a GET, or "" */
} S3Request;

/* What a GET may ask for beyond the object */
typedef struct S3GetOptions
{
	uint64_t	range_from;		/* the body from this byte on */
	uint64_t	range_len;		/* that many bytes; 0: to its end */
	char	   *sha256_meta;	/* gets the stored SHA-256, or "" */
} S3GetOptions;

static void s3_buffer_free(S3Buffer *buf);
static bool s3_buffer_append(S3Buffer *buf, const char *data, size_t len);
static void s3_set_error(WvS3Error *err, long status, bool transient,
						 const char *fmt,...)
			__attribute__((format(printf, 4, 5)));
static char *s3_encode(char *out, size_t out_size, const char *in,
					   bool keep_slash);
static bool s3_object_url(WvS3 *s3, char *url, size_t size,
						  const char *name, WvS3Error *err);
static bool s3_bucket_url(WvS3 *s3, char *url, size_t size, const char *query);
static size_t s3_write_cb(char *ptr, size_t size, size_t nmemb, void *arg);
static size_t s3_read_cb(char *ptr, size_t size, size_t nmemb, void *arg);
static size_t s3_header_cb(char *ptr, size_t size, size_t nmemb, void *arg);
static int	s3_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
						   curl_off_t ultotal, curl_off_t ulnow);
static WvS3Status s3_perform(WvS3 *s3, const char *method, const char *url,
							 const S3GetOptions *get,
							 const WvS3Body *body, const WvS3Sink *sink,
							 bool if_none_match, S3Request *req,
							 WvS3Error *err);
static bool s3_xml_value(const char *xml, size_t len, const char *tag,
						 char *out, size_t out_size, const char **after);
static void s3_sleep_backoff(WvS3 *s3, int attempt);

/*
 * Parse an archive URL: "s3://BUCKET" or "s3://BUCKET/PREFIX".  Bucket
 * names follow S3's rules for new buckets (3 to 63 lower-case letters,
 * digits, dots and hyphens, beginning and ending with a letter or digit);
 * the prefix may have several levels, but no empty one.
 */
bool
wv_s3_parse_url(const char *url, char *bucket, size_t bucket_size,
				char *prefix, size_t prefix_size, char *err, size_t err_size)
{
	const char *b;
	const char *slash;
	size_t		blen;
	const char *p;
	size_t		plen;

	if (strncmp(url, WV_S3_URL_SCHEME, strlen(WV_S3_URL_SCHEME)) != 0)
	{
		snprintf(err, err_size, "The URL must begin with \"%s\".",
				 WV_S3_URL_SCHEME);
		return false;
	}
	b = url + strlen(WV_S3_URL_SCHEME);
	slash = strchr(b, '/');
	blen = slash ? (size_t) (slash - b) : strlen(b);
	if (blen < 3 || blen > WV_S3_BUCKET_MAX)
	{
		snprintf(err, err_size,
				 "A bucket name has 3 to %d characters.", WV_S3_BUCKET_MAX);
		return false;
	}
	for (size_t i = 0; i < blen; i++)
	{
		char		c = b[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  ((c == '.' || c == '-') && i > 0 && i < blen - 1)))
		{
			snprintf(err, err_size,
					 "A bucket name has only lower-case letters, digits, dots and hyphens, and begins and ends with a letter or digit.");
			return false;
		}
	}
	if (blen >= bucket_size)
	{
		snprintf(err, err_size, "The bucket name is too long.");
		return false;
	}
	memcpy(bucket, b, blen);
	bucket[blen] = '\0';

	p = slash ? slash : "";
	while (*p == '/')
		p++;
	plen = strlen(p);
	while (plen > 0 && p[plen - 1] == '/')
		plen--;
	if (plen >= prefix_size || plen > WV_S3_KEY_MAX - 64)
	{
		snprintf(err, err_size, "The prefix is longer than %d bytes.",
				 WV_S3_KEY_MAX - 64);
		return false;
	}
	for (size_t i = 0; i < plen; i++)
	{
		unsigned char c = (unsigned char) p[i];

		if (c < 0x20 || c == 0x7f || c == '\\')
		{
			snprintf(err, err_size,
					 "The prefix must not contain control characters or backslashes.");
			return false;
		}
		if (c == '/' && i + 1 < plen && p[i + 1] == '/')
		{
			snprintf(err, err_size,
					 "The prefix must not contain an empty level (\"//\").");
			return false;
		}
	}
	memcpy(prefix, p, plen);
	prefix[plen] = '\0';
	return true;
}

/* An endpoint is "http://host[:port]" or "https://host[:port]", no path. */
bool
wv_s3_check_endpoint(const char *endpoint, char *err, size_t err_size)
{
	const char *host;
	size_t		len;

	if (strncmp(endpoint, "https://", 8) == 0)
		host = endpoint + 8;
	else if (strncmp(endpoint, "http://", 7) == 0)
		host = endpoint + 7;
	else
	{
		snprintf(err, err_size,
				 "The endpoint must begin with \"https://\" or \"http://\".");
		return false;
	}
	len = strlen(host);
	if (len > 0 && host[len - 1] == '/')
		len--;
	if (len == 0 || len > 400)
	{
		snprintf(err, err_size, "The endpoint must name a host.");
		return false;
	}
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) host[i];

		if (c == '/' || c == '?' || c == '#' || c == '@' || c <= 0x20 ||
			c >= 0x7f)
		{
			snprintf(err, err_size,
					 "The endpoint is a scheme, a host and an optional port, with no path, query or user name.");
			return false;
		}
	}
	return true;
}

bool
wv_s3_check_region(const char *region, char *err, size_t err_size)
{
	size_t		len = strlen(region);

	if (len == 0 || len > 32)
	{
		snprintf(err, err_size, "A region name has 1 to 32 characters.");
		return false;
	}
	for (size_t i = 0; i < len; i++)
	{
		char		c = region[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
		{
			snprintf(err, err_size,
					 "A region name has only lower-case letters, digits and hyphens, as in \"eu-west-1\".");
			return false;
		}
	}
	return true;
}

bool
wv_s3_check_storage_class(const char *storage_class, char *err,
						  size_t err_size)
{
	size_t		len = strlen(storage_class);

	if (len > 64)
	{
		snprintf(err, err_size, "A storage class has at most 64 characters.");
		return false;
	}
	for (size_t i = 0; i < len; i++)
	{
		char		c = storage_class[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
		{
			snprintf(err, err_size,
					 "A storage class has only upper-case letters, digits and underscores, as in \"STANDARD_IA\".");
			return false;
		}
	}
	return true;
}

void
wv_s3_config_init(WvS3Config *config)
{
	memset(config, 0, sizeof(*config));
	config->prefix = "";
	config->endpoint = "";
	config->region = "";
	config->uri_style = WV_S3_URI_HOST;
	config->ca_file = "";
	config->storage_class = "";
	config->connect_timeout_ms = WV_S3_DEFAULT_CONNECT_TIMEOUT_MS;
	config->stall_timeout_ms = WV_S3_DEFAULT_STALL_TIMEOUT_MS;
	config->retries = WV_S3_DEFAULT_RETRIES;
}

bool
wv_s3_global_init(char *err, size_t err_size)
{
	static bool done = false;
	CURLcode	rc;

	if (done)
		return true;
	rc = curl_global_init(CURL_GLOBAL_ALL);
	if (rc != CURLE_OK)
	{
		snprintf(err, err_size, "could not initialize libcurl: %s",
				 curl_easy_strerror(rc));
		return false;
	}
	done = true;
	return true;
}

/* The first of the environment variables that is set and not empty. */
static const char *
s3_getenv2(const char *a, const char *b)
{
	const char *v = getenv(a);

	if (v != NULL && v[0] != '\0')
		return v;
	v = b ? getenv(b) : NULL;
	if (v != NULL && v[0] != '\0')
		return v;
	return NULL;
}

/*
 * The endpoint and region a client for config uses: the settings, else the
 * environment's, else AWS's defaults.
 */
bool
wv_s3_resolve(const WvS3Config *config, char *endpoint, size_t endpoint_size,
			  char *region, size_t region_size, char *err, size_t err_size)
{
	const char *r = config->region;
	const char *e = config->endpoint;
	size_t		len;

	if (r == NULL || r[0] == '\0')
		r = s3_getenv2("AWS_REGION", "AWS_DEFAULT_REGION");
	if (r == NULL)
		r = "us-east-1";
	if (!wv_s3_check_region(r, err, err_size))
		return false;
	snprintf(region, region_size, "%s", r);

	if (e == NULL || e[0] == '\0')
		e = s3_getenv2("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	if (e == NULL)
		snprintf(endpoint, endpoint_size, "https://s3.%s.amazonaws.com", region);
	else
	{
		if (!wv_s3_check_endpoint(e, err, err_size))
			return false;
		snprintf(endpoint, endpoint_size, "%s", e);
	}
	len = strlen(endpoint);
	if (len > 0 && endpoint[len - 1] == '/')
		endpoint[len - 1] = '\0';
	return true;
}

WvS3 *
wv_s3_create(const WvS3Config *config, const WvS3Hooks *hooks, char *err,
			 size_t err_size)
{
	WvS3	   *s3;
	const char *host;

	if (!wv_s3_global_init(err, err_size))
		return NULL;

	s3 = calloc(1, sizeof(WvS3));
	if (s3 == NULL)
	{
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	s3->config = *config;
	if (hooks)
		s3->hooks = *hooks;
	if (s3->config.prefix == NULL)
		s3->config.prefix = "";
	if (s3->config.ca_file == NULL)
		s3->config.ca_file = "";
	if (s3->config.storage_class == NULL)
		s3->config.storage_class = "";

	if (!wv_s3_resolve(config, s3->endpoint, sizeof(s3->endpoint),
					   s3->region, sizeof(s3->region), err, err_size))
	{
		free(s3);
		return NULL;
	}

	/* requests go to the endpoint, or to BUCKET.host in host style */
	host = strstr(s3->endpoint, "://") + 3;
	if (s3->config.uri_style == WV_S3_URI_HOST)
		snprintf(s3->scheme_host, sizeof(s3->scheme_host), "%.*s%s.%s",
				 (int) (host - s3->endpoint), s3->endpoint,
				 s3->config.bucket, host);
	else
		snprintf(s3->scheme_host, sizeof(s3->scheme_host), "%s",
				 s3->endpoint);

	snprintf(s3->describe, sizeof(s3->describe), "s3://%s%s%s at %s",
			 s3->config.bucket, s3->config.prefix[0] ? "/" : "",
			 s3->config.prefix, s3->endpoint);

	s3->curl = curl_easy_init();
	if (s3->curl == NULL)
	{
		snprintf(err, err_size, "could not initialize libcurl");
		free(s3);
		return NULL;
	}
	return s3;
}

void
wv_s3_free(WvS3 *s3)
{
	if (s3 == NULL)
		return;
	if (s3->curl)
		curl_easy_cleanup(s3->curl);
	/* the secret does not outlive the client in memory we give back */
	memset(&s3->creds, 0, sizeof(s3->creds));
	free(s3);
}

const char *
wv_s3_describe(WvS3 *s3)
{
	return s3->describe;
}

const char *
wv_s3_endpoint(WvS3 *s3)
{
	return s3->endpoint;
}

const char *
wv_s3_region(WvS3 *s3)
{
	return s3->region;
}

static void
s3_buffer_free(S3Buffer *buf)
{
	free(buf->data);
	memset(buf, 0, sizeof(*buf));
}

static bool
s3_buffer_append(S3Buffer *buf, const char *data, size_t len)
{
	if (buf->len + len > buf->max)
	{
		buf->overflow = true;
		len = buf->max - buf->len;
	}
	if (buf->len + len + 1 > buf->cap)
	{
		size_t		cap = buf->cap ? buf->cap : 4096;
		char	   *p;

		while (cap < buf->len + len + 1)
			cap *= 2;
		p = realloc(buf->data, cap);
		if (p == NULL)
			return false;
		buf->data = p;
		buf->cap = cap;
	}
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return true;
}

static void
s3_set_error(WvS3Error *err, long status, bool transient, const char *fmt,...)
{
	va_list		ap;

	err->http_status = status;
	err->transient = transient;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/*
 * Percent-encode in as SigV4 wants: letters, digits and "-._~" stay, so
 * does '/' in a path; every other byte becomes %XX (upper-case hex).
 */
static char *
s3_encode(char *out, size_t out_size, const char *in, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		o = 0;

	for (const unsigned char *p = (const unsigned char *) in; *p; p++)
	{
		if (o + 4 >= out_size)
			return NULL;
		/* ASCII only, whatever the locale says of other bytes */
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') ||
			*p == '-' || *p == '_' || *p == '.' || *p == '~' ||
			(keep_slash && *p == '/'))
			out[o++] = (char) *p;
		else
		{
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

/* The URL of PREFIX/name. */
static bool
s3_object_url(WvS3 *s3, char *url, size_t size, const char *name,
			  WvS3Error *err)
{
	char		key[WV_S3_KEY_MAX + 1];
	char		enc[3 * WV_S3_KEY_MAX + 1];
	int			n;

	n = snprintf(key, sizeof(key), "%s%s%s", s3->config.prefix,
				 s3->config.prefix[0] ? "/" : "", name);
	if (n < 0 || (size_t) n >= sizeof(key) ||
		s3_encode(enc, sizeof(enc), key, true) == NULL)
	{
		s3_set_error(err, 0, false, "object name \"%s\" is too long", name);
		return false;
	}
	if (s3->config.uri_style == WV_S3_URI_PATH)
		n = snprintf(url, size, "%s/%s/%s", s3->scheme_host,
					 s3->config.bucket, enc);
	else
		n = snprintf(url, size, "%s/%s", s3->scheme_host, enc);
	if (n < 0 || (size_t) n >= size)
	{
		s3_set_error(err, 0, false, "object name \"%s\" is too long", name);
		return false;
	}
	return true;
}

/* The URL of the bucket itself, with a query (already encoded). */
static bool
s3_bucket_url(WvS3 *s3, char *url, size_t size, const char *query)
{
	int			n;

	if (s3->config.uri_style == WV_S3_URI_PATH)
		n = snprintf(url, size, "%s/%s?%s", s3->scheme_host,
					 s3->config.bucket, query);
	else
		n = snprintf(url, size, "%s/?%s", s3->scheme_host, query);
	return n >= 0 && (size_t) n < size;
}

/* libcurl gives us response body data. */
static size_t
s3_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	S3Request  *req = (S3Request *) arg;
	size_t		len = size * nmemb;
	long		status = 0;

	curl_easy_getinfo(req->s3->curl, CURLINFO_RESPONSE_CODE, &status);
	if (req->sink != NULL && status >= 200 && status < 300)
	{
		if (!req->sink->write(req->sink->arg, ptr, len))
		{
			req->sink_stopped = true;
			return 0;			/* libcurl ends the transfer */
		}
		req->delivered += len;
		return len;
	}
	/* an error body, or a LIST's answer: kept, up to a bound */
	if (!s3_buffer_append(&req->response, ptr, len))
		return 0;
	return len;
}

/*
 * libcurl gives us a response header line: keep the SHA-256 stored with the
 * object.  Header names are case-insensitive.
 */
static size_t
s3_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	S3Request  *req = (S3Request *) arg;
	size_t		len = size * nmemb;
	size_t		name_len = strlen(WV_S3_SHA256_META ":");

	if (len > name_len && strncasecmp(ptr, WV_S3_SHA256_META ":", name_len) == 0)
	{
		const char *v = ptr + name_len;
		const char *end = ptr + len;
		size_t		n = 0;

		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (v + n < end && isxdigit((unsigned char) v[n]) &&
			   n < WV_S3_SHA256_HEX_LEN)
			n++;
		memcpy(req->sha256_meta, v, n);
		req->sha256_meta[n] = '\0';
	}
	return len;
}

/* libcurl wants more of the PUT's body. */
static size_t
s3_read_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	S3Request  *req = (S3Request *) arg;
	size_t		n;

	n = req->body->read(req->body->arg, ptr, size * nmemb);
	if (n == (size_t) -1)
	{
		req->body_failed = true;
		return CURL_READFUNC_ABORT;
	}
	return n;
}

/* libcurl asks to start the body over (on a redirect or an auth retry) */
static int
s3_seek_cb(void *arg, curl_off_t offset, int origin)
{
	S3Request  *req = (S3Request *) arg;

	if (offset != 0 || origin != SEEK_SET || !req->body->rewind(req->body->arg))
		return CURL_SEEKFUNC_CANTSEEK;
	return CURL_SEEKFUNC_OK;
}

static int
s3_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			   curl_off_t ultotal, curl_off_t ulnow)
{
	S3Request  *req = (S3Request *) arg;
	WvS3	   *s3 = req->s3;

	if (s3->hooks.interrupted && s3->hooks.interrupted(s3->hooks.arg))
	{
		req->interrupted = true;
		return 1;				/* abort the transfer */
	}
	return 0;
}

/*
 * Find <tag>value</tag> in xml (entities decoded); *after, if not NULL,
 * gets where the search may go on.
 */
static bool
s3_xml_value(const char *xml, size_t len, const char *tag, char *out,
			 size_t out_size, const char **after)
{
	char		open[64];
	char		close[64];
	const char *s;
	const char *e;
	size_t		o = 0;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (xml == NULL || (s = strstr(xml, open)) == NULL)
		return false;
	s += strlen(open);
	if ((e = strstr(s, close)) == NULL)
		return false;
	if (after)
		*after = e + strlen(close);
	while (s < e && o + 1 < out_size)
	{
		if (*s == '&')
		{
			static const struct
			{
				const char *ent;
				char		c;
			}			ents[] = {
				{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'},
				{"&quot;", '"'}, {"&apos;", '\''}
			};
			bool		found = false;

			for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
			{
				size_t		l = strlen(ents[i].ent);

				if ((size_t) (e - s) >= l && strncmp(s, ents[i].ent, l) == 0)
				{
					out[o++] = ents[i].c;
					s += l;
					found = true;
					break;
				}
			}
			if (found)
				continue;
			if (s[1] == '#')
			{
				char	   *end;
				long		c = (s[2] == 'x') ? strtol(s + 3, &end, 16) :
					strtol(s + 2, &end, 10);

				if (*end == ';' && c > 0 && c < 128)
				{
					out[o++] = (char) c;
					s = end + 1;
					continue;
				}
			}
		}
		out[o++] = *s++;
	}
	out[o] = '\0';
	(void) len;
	return true;
}

/* Wait before attempt number attempt + 1. */
static void
s3_sleep_backoff(WvS3 *s3, int attempt)
{
	long		ms = S3_BACKOFF_MS;

	for (int i = 0; i < attempt && ms < S3_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > S3_BACKOFF_MAX_MS)
		ms = S3_BACKOFF_MAX_MS;
	/* jitter: workers that failed together do not retry together */
	ms = ms / 2 + rand() % (ms / 2 + 1);
	if (s3->hooks.sleep)
		s3->hooks.sleep(s3->hooks.arg, ms);
	else
	{
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		{
			if (s3->hooks.interrupted && s3->hooks.interrupted(s3->hooks.arg))
				break;
		}
	}
}

/* Is a failure of libcurl worth another attempt? */
static bool
s3_curl_transient(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_SSL_CONNECT_ERROR:
			return true;
		default:
			return false;
	}
}

/*
 * Run one request, with its retries.  url is complete; body (PUT) or sink
 * (GET) may be NULL.  req is filled for the caller (a LIST reads its
 * response buffer); the caller frees req->response.
 */
static WvS3Status
s3_perform(WvS3 *s3, const char *method, const char *url,
		   const S3GetOptions *get, const WvS3Body *body, const WvS3Sink *sink, bool if_none_match,
		   S3Request *req, WvS3Error *err)
{
	char		credential_error[512];
	char		sigv4[128];
	char		header[WV_S3_TOKEN_MAX + 64];
	WvS3Status	status = WV_S3_ERROR;

	memset(err, 0, sizeof(*err));
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", s3->region);

	for (int attempt = 0;; attempt++)
	{
		struct curl_slist *headers = NULL;
		CURLcode	rc;
		long		http_status = 0;
		long		new_connections = 0;
		curl_off_t	sent = 0;
		curl_off_t	received = 0;
		double		seconds = 0;
		bool		transient = false;
		WvS3RequestInfo info;

		memset(req, 0, sizeof(*req));
		req->s3 = s3;
		req->method = method;
		req->body = body;
		req->sink = sink;
		req->response.max = sink ? S3_ERROR_BODY_MAX : S3_LIST_BODY_MAX;
		err->attempts = attempt + 1;

		if (s3->hooks.interrupted && s3->hooks.interrupted(s3->hooks.arg))
		{
			s3_set_error(err, 0, false, "interrupted");
			return WV_S3_INTERRUPTED;
		}

		/* credentials may have been rotated or be about to expire */
		if (!wv_s3_credentials_get(&s3->creds, &s3->hooks, credential_error,
								   sizeof(credential_error)))
		{
			s3_set_error(err, 0, false, "%s", credential_error);
			return WV_S3_ERROR;
		}
		if (body != NULL && !body->rewind(body->arg))
		{
			s3_set_error(err, 0, false, "could not read the data to send");
			return WV_S3_ERROR;
		}

		curl_easy_reset(s3->curl);
		curl_easy_setopt(s3->curl, CURLOPT_URL, url);
		curl_easy_setopt(s3->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s3->curl, CURLOPT_ERRORBUFFER, s3->curl_error);
		s3->curl_error[0] = '\0';
		curl_easy_setopt(s3->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(s3->curl, CURLOPT_CONNECTTIMEOUT_MS,
						 s3->config.connect_timeout_ms);
		curl_easy_setopt(s3->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(s3->curl, CURLOPT_LOW_SPEED_TIME,
						 (s3->config.stall_timeout_ms + 999) / 1000);
		curl_easy_setopt(s3->curl, CURLOPT_TCP_KEEPALIVE, 1L);
		if (s3->config.ca_file[0] != '\0')
		{
			const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

			/* the DBA's CA beside the system's, not instead of them */
			curl_easy_setopt(s3->curl, CURLOPT_CAINFO, s3->config.ca_file);
			curl_easy_setopt(s3->curl, CURLOPT_CAPATH,
							 v->capath ? v->capath : "/etc/ssl/certs");
		}
		curl_easy_setopt(s3->curl, CURLOPT_AWS_SIGV4, sigv4);
		curl_easy_setopt(s3->curl, CURLOPT_USERNAME, s3->creds.access_key);
		curl_easy_setopt(s3->curl, CURLOPT_PASSWORD, s3->creds.secret_key);
		curl_easy_setopt(s3->curl, CURLOPT_WRITEFUNCTION, s3_write_cb);
		curl_easy_setopt(s3->curl, CURLOPT_WRITEDATA, req);
		curl_easy_setopt(s3->curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(s3->curl, CURLOPT_XFERINFOFUNCTION, s3_progress_cb);
		curl_easy_setopt(s3->curl, CURLOPT_XFERINFODATA, req);

		snprintf(header, sizeof(header), "x-amz-content-sha256: %s",
				 body ? body->sha256_hex : WV_S3_EMPTY_SHA256);
		headers = curl_slist_append(headers, header);
		if (s3->creds.token[0] != '\0')
		{
			snprintf(header, sizeof(header), "x-amz-security-token: %s",
					 s3->creds.token);
			headers = curl_slist_append(headers, header);
		}
		if (strcmp(method, "PUT") == 0)
		{
			headers = curl_slist_append(headers,
										"Content-Type: application/octet-stream");
			snprintf(header, sizeof(header), "%s: %s", WV_S3_SHA256_META,
					 body->sha256_hex);
			headers = curl_slist_append(headers, header);
			if (if_none_match)
				headers = curl_slist_append(headers, "If-None-Match: *");
			if (s3->config.storage_class[0] != '\0')
			{
				snprintf(header, sizeof(header), "x-amz-storage-class: %s",
						 s3->config.storage_class);
				headers = curl_slist_append(headers, header);
			}
			curl_easy_setopt(s3->curl, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(s3->curl, CURLOPT_READFUNCTION, s3_read_cb);
			curl_easy_setopt(s3->curl, CURLOPT_READDATA, req);
			curl_easy_setopt(s3->curl, CURLOPT_SEEKFUNCTION, s3_seek_cb);
			curl_easy_setopt(s3->curl, CURLOPT_SEEKDATA, req);
			curl_easy_setopt(s3->curl, CURLOPT_INFILESIZE_LARGE,
							 (curl_off_t) body->length);
		}
		else if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(s3->curl, CURLOPT_NOBODY, 1L);
		if (get != NULL)
		{
			curl_easy_setopt(s3->curl, CURLOPT_HEADERFUNCTION, s3_header_cb);
			curl_easy_setopt(s3->curl, CURLOPT_HEADERDATA, req);
			if (get->range_len > 0)
			{
				snprintf(header, sizeof(header), "Range: bytes=%llu-%llu",
						 (unsigned long long) get->range_from,
						 (unsigned long long) (get->range_from +
											   get->range_len - 1));
				headers = curl_slist_append(headers, header);
			}
			else if (get->range_from > 0)
			{
				snprintf(header, sizeof(header), "Range: bytes=%llu-",
						 (unsigned long long) get->range_from);
				headers = curl_slist_append(headers, header);
			}
		}
		if (headers == NULL)
		{
			s3_set_error(err, 0, false, "out of memory");
			return WV_S3_ERROR;
		}
		curl_easy_setopt(s3->curl, CURLOPT_HTTPHEADER, headers);

		rc = curl_easy_perform(s3->curl);
		curl_slist_free_all(headers);

		curl_easy_getinfo(s3->curl, CURLINFO_RESPONSE_CODE, &http_status);
		curl_easy_getinfo(s3->curl, CURLINFO_NUM_CONNECTS, &new_connections);
		curl_easy_getinfo(s3->curl, CURLINFO_SIZE_UPLOAD_T, &sent);
		curl_easy_getinfo(s3->curl, CURLINFO_SIZE_DOWNLOAD_T, &received);
		curl_easy_getinfo(s3->curl, CURLINFO_TOTAL_TIME, &seconds);

		if (req->interrupted)
		{
			s3_set_error(err, 0, false, "interrupted");
			status = WV_S3_INTERRUPTED;
		}
		else if (req->sink_stopped)
		{
			s3_set_error(err, http_status, false, "stopped by the reader");
			status = WV_S3_ABORTED;
		}
		else if (req->body_failed)
		{
			s3_set_error(err, 0, false, "could not read the data to send");
			status = WV_S3_ERROR;
		}
		else if (rc != CURLE_OK)
		{
			transient = s3_curl_transient(rc);
			s3_set_error(err, 0, transient, "%s",
						 s3->curl_error[0] ? s3->curl_error :
						 curl_easy_strerror(rc));
			status = WV_S3_ERROR;
		}
		else if (http_status >= 200 && http_status < 300)
			status = WV_S3_OK;
		else
		{
			char		message[WV_S3_MESSAGE_MAX - 96];

			err->code[0] = '\0';
			message[0] = '\0';
			if (req->response.data)
			{
				s3_xml_value(req->response.data, req->response.len, "Code",
							 err->code, sizeof(err->code), NULL);
				s3_xml_value(req->response.data, req->response.len, "Message",
							 message, sizeof(message), NULL);
			}
			/* HEAD answers carry no body: name the usual case */
			if (err->code[0] == '\0' && http_status == 404 &&
				strcmp(method, "HEAD") == 0)
				snprintf(err->code, sizeof(err->code), "NotFound");
			transient = (http_status >= 500 || http_status == 429 ||
						 http_status == 408);
			if (http_status == 404 && strcmp(err->code, "NoSuchBucket") != 0)
				status = WV_S3_NOT_FOUND;
			else if (http_status == 412)
				status = WV_S3_EXISTS;
			else
				status = WV_S3_ERROR;
			s3_set_error(err, http_status, transient, "HTTP %ld%s%s%s%s",
						 http_status, err->code[0] ? " " : "", err->code,
						 message[0] ? ": " : "", message);
		}

		/* a GET that delivered bytes starts over only if its sink can */
		if (transient && req->delivered > 0 &&
			(sink == NULL || sink->reset == NULL))
			transient = false;
		if (transient && attempt >= s3->config.retries)
			transient = false;

		memset(&info, 0, sizeof(info));
		/* a GET whose body is not handed to a sink is a list */
		info.method = (strcmp(method, "GET") == 0 && sink == NULL) ?
			"LIST" : method;
		info.http_status = http_status;
		info.seconds = seconds;
		info.bytes_sent = (uint64_t) sent;
		info.bytes_received = (uint64_t) received;
		info.retried = transient;
		info.failed = (status != WV_S3_OK);
		info.new_connection = (new_connections > 0);
		if (s3->hooks.request_done)
			s3->hooks.request_done(s3->hooks.arg, &info);

		if (!transient)
			break;

		s3_buffer_free(&req->response);
		if (req->delivered > 0 && !sink->reset(sink->arg))
			break;
		s3_sleep_backoff(s3, attempt);
	}
	return status;
}

WvS3Status
wv_s3_put(WvS3 *s3, const char *name, const WvS3Body *body,
		  bool if_none_match, WvS3Error *err)
{
	char		url[S3_URL_MAX];
	S3Request	req;
	WvS3Status	status;

	if (!s3_object_url(s3, url, sizeof(url), name, err))
		return WV_S3_ERROR;
	status = s3_perform(s3, "PUT", url, NULL, body, NULL, if_none_match, &req,
						err);
	s3_buffer_free(&req.response);
	return status;
}

WvS3Status
wv_s3_get(WvS3 *s3, const char *name, const WvS3Sink *sink, WvS3Error *err)
{
	return wv_s3_get_from(s3, name, 0, 0, sink, NULL, err);
}

/*
 * A GET of length bytes of the object from byte offset on (to its end with
 * length 0; all of it with both 0); sha256_meta, if not NULL
 * (WV_S3_SHA256_HEX_LEN + 1 bytes), gets the SHA-256 stored with the
 * object at its PUT, or "" if it has none (stored before).
 */
WvS3Status
wv_s3_get_from(WvS3 *s3, const char *name, uint64_t offset, uint64_t length,
			   const WvS3Sink *sink, char *sha256_meta, WvS3Error *err)
{
	char		url[S3_URL_MAX];
	S3Request	req;
	S3GetOptions get;
	WvS3Status	status;

	if (sha256_meta != NULL)
		sha256_meta[0] = '\0';
	if (!s3_object_url(s3, url, sizeof(url), name, err))
		return WV_S3_ERROR;
	get.range_from = offset;
	get.range_len = length;
	get.sha256_meta = sha256_meta;
	status = s3_perform(s3, "GET", url, &get, NULL, sink, false, &req, err);
	if (status == WV_S3_OK && sha256_meta != NULL)
		memcpy(sha256_meta, req.sha256_meta, sizeof(req.sha256_meta));
	s3_buffer_free(&req.response);
	return status;
}

WvS3Status
wv_s3_head(WvS3 *s3, const char *name, uint64_t *size, WvS3Error *err)
{
	char		url[S3_URL_MAX];
	S3Request	req;
	WvS3Status	status;

	if (!s3_object_url(s3, url, sizeof(url), name, err))
		return WV_S3_ERROR;
	status = s3_perform(s3, "HEAD", url, NULL, NULL, NULL, false, &req, err);
	if (status == WV_S3_OK && size != NULL)
	{
		curl_off_t	len = -1;

		curl_easy_getinfo(s3->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		*size = len < 0 ? 0 : (uint64_t) len;
	}
	s3_buffer_free(&req.response);
	return status;
}

/*
 * ListObjectsV2 of PREFIX/name_prefix, a page (up to 1,000 keys) at a time,
 * following continuation tokens.
 */
WvS3Status
wv_s3_list(WvS3 *s3, const char *name_prefix, WvS3ListCallback found,
		   void *arg, WvS3Error *err)
{
	char		full_prefix[WV_S3_KEY_MAX + 1];
	char		enc_prefix[3 * WV_S3_KEY_MAX + 1];
	char		token[2048] = "";
	char		enc_token[3 * sizeof(token)];
	size_t		skip;
	int			n;

	n = snprintf(full_prefix, sizeof(full_prefix), "%s%s%s",
				 s3->config.prefix, s3->config.prefix[0] ? "/" : "",
				 name_prefix);
	if (n < 0 || (size_t) n >= sizeof(full_prefix) ||
		s3_encode(enc_prefix, sizeof(enc_prefix), full_prefix, false) == NULL)
	{
		s3_set_error(err, 0, false, "object name prefix \"%s\" is too long",
					 name_prefix);
		return WV_S3_ERROR;
	}
	skip = strlen(s3->config.prefix) + (s3->config.prefix[0] ? 1 : 0);

	for (;;)
	{
		char		query[sizeof(enc_prefix) + sizeof(enc_token) + 64];
		char		url[S3_URL_MAX + sizeof(query)];
		char		truncated[16] = "";
		S3Request	req;
		WvS3Status	status;
		const char *p;
		const char *contents;

		/* parameters in sorted order, values encoded: see the header */
		if (token[0] != '\0')
		{
			if (s3_encode(enc_token, sizeof(enc_token), token, false) == NULL)
			{
				s3_set_error(err, 0, false, "continuation token is too long");
				return WV_S3_ERROR;
			}
			snprintf(query, sizeof(query),
					 "continuation-token=%s&list-type=2&prefix=%s",
					 enc_token, enc_prefix);
		}
		else
			snprintf(query, sizeof(query), "list-type=2&prefix=%s",
					 enc_prefix);
		if (!s3_bucket_url(s3, url, sizeof(url), query))
		{
			s3_set_error(err, 0, false, "object name prefix \"%s\" is too long",
						 name_prefix);
			return WV_S3_ERROR;
		}

		status = s3_perform(s3, "GET", url, NULL, NULL, NULL, false, &req,
							err);
		if (status == WV_S3_NOT_FOUND)
		{
			/* a 404 on the bucket itself is never "not found" */
			status = WV_S3_ERROR;
		}
		if (status != WV_S3_OK)
		{
			s3_buffer_free(&req.response);
			return status;
		}
		if (req.response.overflow || req.response.data == NULL)
		{
			s3_buffer_free(&req.response);
			s3_set_error(err, 0, false, "could not read the object list");
			return WV_S3_ERROR;
		}

		p = req.response.data;
		while ((contents = strstr(p, "<Contents>")) != NULL)
		{
			char		key[WV_S3_KEY_MAX + 1];
			char		size[32] = "0";
			const char *end = strstr(contents, "</Contents>");

			if (end == NULL)
				break;
			if (s3_xml_value(contents, end - contents, "Key", key, sizeof(key),
							 NULL) &&
				strlen(key) >= skip && strncmp(key, full_prefix, skip) == 0)
			{
				s3_xml_value(contents, end - contents, "Size", size,
							 sizeof(size), NULL);
				if (!found(arg, key + skip, strtoull(size, NULL, 10)))
				{
					s3_buffer_free(&req.response);
					return WV_S3_OK;
				}
			}
			p = end + strlen("</Contents>");
		}

		token[0] = '\0';
		s3_xml_value(req.response.data, req.response.len, "IsTruncated",
					 truncated, sizeof(truncated), NULL);
		if (strcmp(truncated, "true") == 0)
			s3_xml_value(req.response.data, req.response.len,
						 "NextContinuationToken", token, sizeof(token), NULL);
		s3_buffer_free(&req.response);
		if (token[0] == '\0')
			return WV_S3_OK;
	}
}

/* What wv_s3_find_archived() has seen of a file's names. */
typedef struct S3FindState
{
	const char *file;
	size_t		len;
	bool		found[WALVAULT_CODEC_LOOKUP_COUNT];
	uint64_t	size[WALVAULT_CODEC_LOOKUP_COUNT];
} S3FindState;

/* List callback: mark the exact names of the file. */
static bool
s3_find_one(void *arg, const char *name, uint64_t size)
{
	S3FindState *st = (S3FindState *) arg;

	if (strncmp(name, st->file, st->len) != 0)
		return true;
	for (int i = 0; i < WALVAULT_CODEC_LOOKUP_COUNT; i++)
	{
		if (strcmp(name + st->len,
				   walvault_codec_suffix(walvault_codec_lookup_order[i])) == 0)
		{
			st->found[i] = true;
			st->size[i] = size;
		}
	}
	return true;
}

WvS3Status
wv_s3_find_archived(WvS3 *s3, const char *file, WalvaultCodecMethod *method,
					uint64_t *size, WvS3Error *err)
{
	S3FindState st;
	WvS3Status	status;

	memset(&st, 0, sizeof(st));
	st.file = file;
	st.len = strlen(file);
	status = wv_s3_list(s3, file, s3_find_one, &st, err);
	if (status != WV_S3_OK)
		return status;
	for (int i = 0; i < WALVAULT_CODEC_LOOKUP_COUNT; i++)
	{
		if (st.found[i])
		{
			*method = walvault_codec_lookup_order[i];
			*size = st.size[i];
			return WV_S3_OK;
		}
	}
	return WV_S3_NOT_FOUND;
}

/*-------------------------------------------------------------------------
 *
 * sha256.c
 *	  The SHA-256 of downloaded bytes, to compare with the one stored with
 *	  an object when it was archived.
 *
 * Every PUT of the module stores the SHA-256 of the object as its metadata
 * (s3_client.c); the restore program hashes what a GET delivers and
 * compares (source_s3.c), so that a byte changed in the store after the
 * upload, in any kind of file, is found.  The hash is libpgcommon's, which
 * is OpenSSL's when the server was built with it; this file includes
 * PostgreSQL headers for it, as wal_records.c does, and restore.h sees an
 * opaque type.
 *
 * src/restore/sha256.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "common/cryptohash.h"
#include "common/sha2.h"

#include "restore.h"

struct WvSha256
{
	pg_cryptohash_ctx *ctx;
};

static void sha256_fail(const char *what);

static void
sha256_fail(const char *what)
{
	wv_error(WV_ERROR_IO, "could not %s a SHA-256 hash", what);
}

/* A hash of nothing yet; dies if it cannot be made. */
WvSha256 *
wv_sha256_create(void)
{
	WvSha256   *h = calloc(1, sizeof(WvSha256));

	if (h == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	wv_sha256_reset(h);
	return h;
}

/* Start over (a download retried from its beginning). */
void
wv_sha256_reset(WvSha256 *h)
{
	if (h->ctx != NULL)
		pg_cryptohash_free(h->ctx);
	h->ctx = pg_cryptohash_create(PG_SHA256);
	if (h->ctx == NULL || pg_cryptohash_init(h->ctx) < 0)
		sha256_fail("initialize");
}

void
wv_sha256_update(WvSha256 *h, const unsigned char *data, size_t len)
{
	if (pg_cryptohash_update(h->ctx, data, len) < 0)
		sha256_fail("compute");
}

/* The hash of everything given, in lower-case hex (65 bytes with '\0'). */
void
wv_sha256_hex(WvSha256 *h, char *hex)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];

	if (pg_cryptohash_final(h->ctx, digest, sizeof(digest)) < 0)
		sha256_fail("finish");
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void
wv_sha256_free(WvSha256 *h)
{
	if (h == NULL)
		return;
	if (h->ctx != NULL)
		pg_cryptohash_free(h->ctx);
	free(h);
}

/*-------------------------------------------------------------------------
 *
 * compare.c
 *	  Does a copy already in the archive hold exactly the WAL file?
 *
 * Every target judges a copy it finds under the name it would write (the
 * server asks again for a file archived just before a crash): identical
 * content is success, anything else an error that keeps the WAL.  The copy
 * arrives in pieces, from a file or from the network, plain or compressed;
 * the comparer takes the pieces as they come, decompresses them with the
 * codec of the restore program, and compares them with the next bytes of
 * the WAL file.  A copy that does not decompress, is truncated, or ends
 * before or after the WAL file is not identical.
 *
 * Memory is bounded whatever the segment size: one buffer of the WAL file
 * at a time, and the decoder's window.
 *
 * src/compare.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgstat.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "pg_walvault.h"

#define CMP_BUFSIZE		(1024 * 1024)

struct WalvaultCompare
{
	int			fd;				/* the WAL file */
	const char *src;
	const char *archived;		/* the copy, for messages */
	WalvaultCodecMethod method;
	WalvaultCodec *codec;		/* NULL for a plain copy */
	bool		equal;			/* so far */
	bool		reported;		/* why not, logged already */
};

/* The decoders, made once per process when first needed, by method */
static WalvaultCodec *cmp_decoders[WALVAULT_CODEC_ZSTD + 1];
static char *cmp_buf = NULL;

static bool cmp_match(void *arg, const char *data, size_t len);
static size_t cmp_read(WalvaultCompare *cmp, size_t len);

/*
 * Start comparing a copy (named archived, for messages) stored with method
 * against the WAL file at src.  The result lives in the current memory
 * context.
 */
WalvaultCompare *
walvault_compare_begin(const char *src, const char *archived,
					   WalvaultCodecMethod method)
{
	WalvaultCompare *cmp = palloc0(sizeof(WalvaultCompare));

	if (cmp_buf == NULL)
		cmp_buf = MemoryContextAlloc(TopMemoryContext, CMP_BUFSIZE);

	cmp->src = pstrdup(src);
	cmp->archived = pstrdup(archived);
	cmp->method = method;
	cmp->equal = true;
	cmp->fd = OpenTransientFile(src, O_RDONLY | PG_BINARY);
	if (cmp->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", src)));
	if (method != WALVAULT_CODEC_NONE)
	{
		const char *err;

		if (cmp_decoders[method] == NULL)
			cmp_decoders[method] = walvault_codec_create(method, false);
		if (cmp_decoders[method] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		if (!walvault_codec_start(cmp_decoders[method], 0, 0, &err))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not start %s decompression: %s",
							walvault_codec_name(method), err)));
		cmp->codec = cmp_decoders[method];
	}
	return cmp;
}

/*
 * The next piece of the archived copy.  Returns false once the copy is
 * known to differ (the rest need not be read).
 */
bool
walvault_compare_feed(WalvaultCompare *cmp, const char *data, size_t len)
{
	const char *err;

	if (!cmp->equal || len == 0)
		return cmp->equal;
	if (cmp->codec == NULL)
		return cmp_match(cmp, data, len);
	if (!walvault_codec_feed(cmp->codec, data, len, false, cmp_match, cmp,
							 &err) && cmp->equal)
	{
		ereport(LOG,
				(errmsg("archived copy \"%s\" cannot be decompressed with %s: %s",
						cmp->archived, walvault_codec_name(cmp->method), err)));
		cmp->equal = false;
	}
	return cmp->equal;
}

/*
 * The copy has been read to its end: was it the whole WAL file, and
 * nothing more?  Closes the WAL file.
 */
bool
walvault_compare_end(WalvaultCompare *cmp)
{
	bool		equal = cmp->equal;

	if (equal && cmp->codec != NULL && !walvault_codec_finished(cmp->codec))
	{
		ereport(LOG,
				(errmsg("archived copy \"%s\" is truncated", cmp->archived)));
		equal = false;
	}
	/* the WAL file must have no byte left */
	if (equal && cmp_read(cmp, 1) != 0)
		equal = false;
	CloseTransientFile(cmp->fd);
	cmp->fd = -1;
	return equal;
}

/*
 * After an error: nothing to undo.  The WAL file's descriptor is a
 * transient file, closed by the caller's error trap with the others.
 */
void
walvault_compare_abort(void)
{
}

/* Codec sink, or the plain path: is this the next part of the WAL file? */
static bool
cmp_match(void *arg, const char *data, size_t len)
{
	WalvaultCompare *cmp = (WalvaultCompare *) arg;

	while (len > 0 && cmp->equal)
	{
		size_t		want = Min(len, CMP_BUFSIZE);

		CHECK_FOR_INTERRUPTS();
		if (cmp_read(cmp, want) != want || memcmp(cmp_buf, data, want) != 0)
			cmp->equal = false;
		data += want;
		len -= want;
	}
	return cmp->equal;
}

/* Read up to len bytes of the WAL file into cmp_buf (fewer at its end). */
static size_t
cmp_read(WalvaultCompare *cmp, size_t len)
{
	return walvault_read_file(cmp->fd, cmp->src, cmp_buf, len,
							  walvault_wait_event(WALVAULT_WAIT_COMPARE));
}

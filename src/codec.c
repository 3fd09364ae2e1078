/*-------------------------------------------------------------------------
 *
 * codec.c
 *	  Streaming compression and decompression (zstd, lz4 frame, gzip),
 *	  shared by the module and the restore program.
 *
 * One interface over three libraries, so that the archive workers compress
 * a WAL file, compare an existing compressed archive file with pg_wal, and
 * pg_walvault_restore decompresses one, all through the same code.  A codec
 * is created once per process and reused for every file:
 * walvault_codec_start() begins a new stream, walvault_codec_feed() pushes
 * input through it and hands every piece of output to a sink.
 *
 * What is written: a zstd frame with a content checksum, an lz4 frame with
 * a content checksum (since 1.3; see walvault_codec_start()), or a gzip
 * member (its trailer has a CRC-32): a changed byte of a compressed file
 * fails its decompression.  What is
 * read: one or more such frames or members in a row, as the command-line
 * tools accept; walvault_codec_finished() says whether the input ended at a
 * frame boundary, so that a truncated file is never taken for a whole one.
 *
 * No PostgreSQL header is used here (see codec.h).
 *
 * src/codec.c
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include "codec.h"

/*
 * Output is staged in a buffer of this size before it goes to the sink.  It
 * must hold what lz4 may give back for one piece of input: the piece plus
 * the rest of a 256 kB block it had buffered.
 */
#define CODEC_BUFSIZE	(512 * 1024)
/* lz4 input is compressed in pieces of this size (fastest here) */
#define CODEC_LZ4_CHUNK (64 * 1024)

struct WalvaultCodec
{
	WalvaultCodecMethod method;
	bool		compress;
	bool		started;		/* lz4: frame header written */
	bool		done;			/* stream end written, or last frame read */
	char	   *buf;
	size_t		bufsize;
	ZSTD_CCtx  *zstd_c;
	ZSTD_DCtx  *zstd_d;
	LZ4F_cctx  *lz4_c;
	LZ4F_dctx  *lz4_d;
	LZ4F_preferences_t lz4_prefs;
	z_stream	zs;
	bool		zs_ready;
};

static bool codec_start_zstd(WalvaultCodec *codec, int level, size_t size,
							 const char **err);
static bool codec_start_lz4(WalvaultCodec *codec, int level, size_t size,
							const char **err);
static bool codec_start_gzip(WalvaultCodec *codec, int level,
							 const char **err);
static bool codec_step(WalvaultCodec *codec, const char **in, size_t *in_len,
					   bool finish, size_t *out_len, const char **err);
static bool codec_step_zstd(WalvaultCodec *codec, const char **in,
							size_t *in_len, bool finish, size_t *out_len,
							const char **err);
static bool codec_step_lz4(WalvaultCodec *codec, const char **in,
						   size_t *in_len, bool finish, size_t *out_len,
						   const char **err);
static bool codec_step_gzip(WalvaultCodec *codec, const char **in,
							size_t *in_len, bool finish, size_t *out_len,
							const char **err);

/*
 * Make a compressor (compress) or decompressor for method.  NULL when out of
 * memory.  The libraries' own state is made by walvault_codec_start().
 */
WalvaultCodec *
walvault_codec_create(WalvaultCodecMethod method, bool compress)
{
	WalvaultCodec *codec = calloc(1, sizeof(WalvaultCodec));

	if (codec == NULL)
		return NULL;
	codec->method = method;
	codec->compress = compress;
	codec->bufsize = CODEC_BUFSIZE;
	codec->buf = malloc(codec->bufsize);
	if (codec->buf == NULL)
	{
		free(codec);
		return NULL;
	}
	return codec;
}

void
walvault_codec_free(WalvaultCodec *codec)
{
	if (codec == NULL)
		return;
	ZSTD_freeCCtx(codec->zstd_c);
	ZSTD_freeDCtx(codec->zstd_d);
	if (codec->lz4_c)
		LZ4F_freeCompressionContext(codec->lz4_c);
	if (codec->lz4_d)
		LZ4F_freeDecompressionContext(codec->lz4_d);
	if (codec->zs_ready)
	{
		if (codec->compress)
			deflateEnd(&codec->zs);
		else
			inflateEnd(&codec->zs);
	}
	free(codec->buf);
	free(codec);
}

/*
 * Does a compressed file that begins with the len bytes at head carry a
 * checksum of all of its content, content_size bytes?  A gzip member always
 * ends with a CRC-32 of its content, and every member of a file is
 * checked.  A zstd or lz4 frame has a content checksum only if its header
 * says so (our lz4 frames before 1.3, and other writers', have none), and
 * the first frame holds all of the content only if its header says so: a
 * further frame could have no checksum.  What this returns true for,
 * decompression has checked (or will check) byte for byte.
 */
bool
walvault_codec_covers_content(WalvaultCodecMethod method,
							  const unsigned char *head, size_t len,
							  uint64_t content_size)
{
	switch (method)
	{
		case WALVAULT_CODEC_GZIP:
			return len >= 2 && head[0] == 0x1f && head[1] == 0x8b;

		case WALVAULT_CODEC_ZSTD:
			/*
			 * The magic number, then the frame header descriptor, whose bit
			 * 2 is Content_Checksum_flag (RFC 8878, 3.1.1.1.1).
			 */
			return len >= 5 &&
				head[0] == 0x28 && head[1] == 0xB5 && head[2] == 0x2F &&
				head[3] == 0xFD && (head[4] & 0x04) != 0 &&
				ZSTD_getFrameContentSize(head, len) == content_size;

		case WALVAULT_CODEC_LZ4:
			{
				LZ4F_dctx  *dctx;
				LZ4F_frameInfo_t info;
				size_t		consumed = len;
				size_t		rc;

				if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx,
																 LZ4F_VERSION)))
					return false;
				memset(&info, 0, sizeof(info));
				rc = LZ4F_getFrameInfo(dctx, &info, head, &consumed);
				LZ4F_freeDecompressionContext(dctx);
				return !LZ4F_isError(rc) &&
					info.contentChecksumFlag == LZ4F_contentChecksumEnabled &&
					info.contentSize == content_size;
			}

		case WALVAULT_CODEC_NONE:
			break;
	}
	return false;
}

/*
 * Begin a new stream, forgetting whatever the previous one left (also after
 * an error).  level is the compression level, the library's own scale; 0
 * means its default (lz4: fast mode).  size, when not 0, is the exact size
 * of the input to come: zstd then sizes its tables to it (at level 22 a
 * 16 MB segment needs a fraction of the 700 MB it would take otherwise) and
 * records it in the frame; lz4 records it too.  Both are ignored when
 * decompressing.
 */
bool
walvault_codec_start(WalvaultCodec *codec, int level, size_t size,
					 const char **err)
{
	codec->started = false;
	codec->done = false;

	switch (codec->method)
	{
		case WALVAULT_CODEC_NONE:
			*err = "no compression method";
			return false;
		case WALVAULT_CODEC_ZSTD:
			return codec_start_zstd(codec, level, size, err);
		case WALVAULT_CODEC_LZ4:
			return codec_start_lz4(codec, level, size, err);
		case WALVAULT_CODEC_GZIP:
			return codec_start_gzip(codec, level, err);
	}
	*err = "unknown compression method";
	return false;
}

static bool
codec_start_zstd(WalvaultCodec *codec, int level, size_t size,
				 const char **err)
{
	size_t		rc;

	if (codec->compress)
	{
		if (codec->zstd_c == NULL &&
			(codec->zstd_c = ZSTD_createCCtx()) == NULL)
		{
			*err = "out of memory";
			return false;
		}
		rc = ZSTD_CCtx_reset(codec->zstd_c, ZSTD_reset_session_and_parameters);
		if (!ZSTD_isError(rc))
			rc = ZSTD_CCtx_setParameter(codec->zstd_c,
										ZSTD_c_compressionLevel,
										level == 0 ? ZSTD_CLEVEL_DEFAULT : level);
		if (!ZSTD_isError(rc))
			rc = ZSTD_CCtx_setParameter(codec->zstd_c,
										ZSTD_c_checksumFlag, 1);
		if (!ZSTD_isError(rc) && size > 0)
			rc = ZSTD_CCtx_setPledgedSrcSize(codec->zstd_c, size);
	}
	else
	{
		if (codec->zstd_d == NULL &&
			(codec->zstd_d = ZSTD_createDCtx()) == NULL)
		{
			*err = "out of memory";
			return false;
		}
		rc = ZSTD_DCtx_reset(codec->zstd_d, ZSTD_reset_session_only);
	}
	if (ZSTD_isError(rc))
	{
		*err = ZSTD_getErrorName(rc);
		return false;
	}
	return true;
}

static bool
codec_start_lz4(WalvaultCodec *codec, int level, size_t size,
				const char **err)
{
	size_t		rc;

	if (!codec->compress)
	{
		if (codec->lz4_d == NULL)
		{
			rc = LZ4F_createDecompressionContext(&codec->lz4_d, LZ4F_VERSION);
			if (LZ4F_isError(rc))
			{
				codec->lz4_d = NULL;
				*err = LZ4F_getErrorName(rc);
				return false;
			}
		}
		LZ4F_resetDecompressionContext(codec->lz4_d);
		return true;
	}

	if (codec->lz4_c == NULL)
	{
		rc = LZ4F_createCompressionContext(&codec->lz4_c, LZ4F_VERSION);
		if (LZ4F_isError(rc))
		{
			codec->lz4_c = NULL;
			*err = LZ4F_getErrorName(rc);
			return false;
		}
	}

	/*
	 * 256 kB blocks, as PostgreSQL's own lz4 users (pg_basebackup, the
	 * server side of base backups) write them, but with a content checksum
	 * (xxHash32 of the whole content), which they leave out: the record
	 * CRCs of a segment do not cover every byte of it (the pieces of
	 * records that cross its ends, the tail of a .partial), and a history
	 * file has no checksum of its own.  It costs some of lz4's speed, the
	 * reason lz4 is chosen; frames written before, without it, are still
	 * read (decompression checks it only when the frame has one).
	 */
	memset(&codec->lz4_prefs, 0, sizeof(codec->lz4_prefs));
	codec->lz4_prefs.compressionLevel = level;
	codec->lz4_prefs.frameInfo.blockSizeID = LZ4F_max256KB;
	codec->lz4_prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	/* with the size, the frame says it holds all of the content */
	codec->lz4_prefs.frameInfo.contentSize = size;
	/* the staging buffer must hold the output of any piece */
	if (LZ4F_compressBound(CODEC_LZ4_CHUNK, &codec->lz4_prefs) +
		LZ4F_HEADER_SIZE_MAX > codec->bufsize)
	{
		*err = "lz4 output bound exceeds the buffer";
		return false;
	}
	return true;
}

static bool
codec_start_gzip(WalvaultCodec *codec, int level, const char **err)
{
	int			rc;

	if (codec->zs_ready)
	{
		/* a level is fixed at init: start over rather than reset */
		if (codec->compress)
			deflateEnd(&codec->zs);
		else
			inflateEnd(&codec->zs);
		codec->zs_ready = false;
	}
	memset(&codec->zs, 0, sizeof(codec->zs));
	/* 16 + MAX_WBITS: a gzip wrapper, not zlib or raw deflate */
	if (codec->compress)
		rc = deflateInit2(&codec->zs,
						  level == 0 ? Z_DEFAULT_COMPRESSION : level,
						  Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	else
		rc = inflateInit2(&codec->zs, 16 + MAX_WBITS);
	if (rc != Z_OK)
	{
		*err = codec->zs.msg ? codec->zs.msg : "out of memory";
		return false;
	}
	codec->zs_ready = true;
	return true;
}

/*
 * Push in_len bytes through the codec and hand all output that results to
 * sink.  finish (compressing only) says this is the last input: the stream
 * is then ended.  Returns false with *err set when the library reports an
 * error (corrupt input, when decompressing); returns true early, with the
 * rest of the input ignored, when the sink asks to stop.
 */
bool
walvault_codec_feed(WalvaultCodec *codec, const char *in, size_t in_len,
					bool finish, WalvaultCodecSink sink, void *arg,
					const char **err)
{
	for (;;)
	{
		size_t		out_len = 0;
		size_t		in_before = in_len;

		if (!codec_step(codec, &in, &in_len, finish, &out_len, err))
			return false;

		/* never spin: a library that takes and gives nothing is stuck */
		if (in_len > 0 && in_len == in_before && out_len == 0)
		{
			*err = "no progress in the compressed stream";
			return false;
		}
		if (out_len > 0 && !sink(arg, codec->buf, out_len))
			return true;

		/*
		 * A full buffer may mean the library holds more output; otherwise
		 * we are through once the input is used up (and, at the end, the
		 * stream is closed).
		 */
		if (in_len == 0 && out_len < codec->bufsize &&
			!(codec->compress && finish && !codec->done))
			return true;
	}
}

/*
 * Compressing: was the end of the stream written?  Decompressing: did the
 * input so far end exactly at the end of a frame?
 */
bool
walvault_codec_finished(const WalvaultCodec *codec)
{
	return codec->done;
}

const WalvaultCodecMethod walvault_codec_lookup_order[WALVAULT_CODEC_LOOKUP_COUNT] = {
	WALVAULT_CODEC_NONE, WALVAULT_CODEC_ZSTD, WALVAULT_CODEC_LZ4,
	WALVAULT_CODEC_GZIP
};

/* File name suffix of an archive file stored with method. */
const char *
walvault_codec_suffix(WalvaultCodecMethod method)
{
	switch (method)
	{
		case WALVAULT_CODEC_NONE:
			return "";
		case WALVAULT_CODEC_GZIP:
			return ".gz";
		case WALVAULT_CODEC_LZ4:
			return ".lz4";
		case WALVAULT_CODEC_ZSTD:
			return ".zst";
	}
	return "";
}

const char *
walvault_codec_name(WalvaultCodecMethod method)
{
	switch (method)
	{
		case WALVAULT_CODEC_NONE:
			return "uncompressed";
		case WALVAULT_CODEC_GZIP:
			return "gzip";
		case WALVAULT_CODEC_LZ4:
			return "lz4";
		case WALVAULT_CODEC_ZSTD:
			return "zstd";
	}
	return "unknown";
}

/*
 * One call into the library: consume what input it takes (advancing *in and
 * *in_len), put what output it gives at the start of codec->buf.
 */
static bool
codec_step(WalvaultCodec *codec, const char **in, size_t *in_len,
		   bool finish, size_t *out_len, const char **err)
{
	switch (codec->method)
	{
		case WALVAULT_CODEC_ZSTD:
			return codec_step_zstd(codec, in, in_len, finish, out_len, err);
		case WALVAULT_CODEC_LZ4:
			return codec_step_lz4(codec, in, in_len, finish, out_len, err);
		case WALVAULT_CODEC_GZIP:
			return codec_step_gzip(codec, in, in_len, finish, out_len, err);
		case WALVAULT_CODEC_NONE:
			break;
	}
	*err = "no compression method";
	return false;
}

static bool
codec_step_zstd(WalvaultCodec *codec, const char **in, size_t *in_len,
				bool finish, size_t *out_len, const char **err)
{
	ZSTD_inBuffer zin = {*in, *in_len, 0};
	ZSTD_outBuffer zout = {codec->buf, codec->bufsize, 0};
	size_t		rc;

	if (codec->compress)
		rc = ZSTD_compressStream2(codec->zstd_c, &zout, &zin,
								  finish ? ZSTD_e_end : ZSTD_e_continue);
	else
		rc = ZSTD_decompressStream(codec->zstd_d, &zout, &zin);
	if (ZSTD_isError(rc))
	{
		*err = ZSTD_getErrorName(rc);
		return false;
	}

	/*
	 * 0 means: compressing with e_end, the frame is complete and flushed;
	 * decompressing, a frame just ended.  A decompressing call that neither
	 * consumed nor produced anything tells nothing about the frame (after a
	 * complete frame it reports that the next header is wanted): ignore it.
	 */
	if (codec->compress)
		codec->done = (finish && rc == 0);
	else if (zin.pos > 0 || zout.pos > 0)
		codec->done = (rc == 0);

	*in += zin.pos;
	*in_len -= zin.pos;
	*out_len = zout.pos;
	return true;
}

static bool
codec_step_lz4(WalvaultCodec *codec, const char **in, size_t *in_len,
			   bool finish, size_t *out_len, const char **err)
{
	size_t		rc;

	if (!codec->compress)
	{
		size_t		src_size = *in_len;
		size_t		dst_size = codec->bufsize;

		rc = LZ4F_decompress(codec->lz4_d, codec->buf, &dst_size,
							 *in, &src_size, NULL);
		if (LZ4F_isError(rc))
		{
			*err = LZ4F_getErrorName(rc);
			return false;
		}
		/* as for zstd, a call without progress says nothing */
		if (src_size > 0 || dst_size > 0)
			codec->done = (rc == 0);
		*in += src_size;
		*in_len -= src_size;
		*out_len = dst_size;
		return true;
	}

	*out_len = 0;
	if (!codec->started)
	{
		rc = LZ4F_compressBegin(codec->lz4_c, codec->buf, codec->bufsize,
								&codec->lz4_prefs);
		if (LZ4F_isError(rc))
		{
			*err = LZ4F_getErrorName(rc);
			return false;
		}
		codec->started = true;
		*out_len = rc;
	}

	if (*in_len > 0)
	{
		size_t		n = *in_len < CODEC_LZ4_CHUNK ? *in_len : CODEC_LZ4_CHUNK;

		rc = LZ4F_compressUpdate(codec->lz4_c, codec->buf + *out_len,
								 codec->bufsize - *out_len, *in, n, NULL);
		if (LZ4F_isError(rc))
		{
			*err = LZ4F_getErrorName(rc);
			return false;
		}
		*in += n;
		*in_len -= n;
		*out_len += rc;
	}
	else if (finish && !codec->done)
	{
		rc = LZ4F_compressEnd(codec->lz4_c, codec->buf + *out_len,
							  codec->bufsize - *out_len, NULL);
		if (LZ4F_isError(rc))
		{
			*err = LZ4F_getErrorName(rc);
			return false;
		}
		codec->done = true;
		*out_len += rc;
	}
	return true;
}

static bool
codec_step_gzip(WalvaultCodec *codec, const char **in, size_t *in_len,
				bool finish, size_t *out_len, const char **err)
{
	z_stream   *zs = &codec->zs;
	size_t		avail = *in_len < UINT_MAX ? *in_len : UINT_MAX;
	int			rc;

	/* input after the end of a member starts another member */
	if (!codec->compress && codec->done && *in_len > 0)
	{
		if (inflateReset(zs) != Z_OK)
		{
			*err = "could not reset gzip decompression";
			return false;
		}
		codec->done = false;
	}

	zs->next_in = (Bytef *) *in;
	zs->avail_in = (uInt) avail;
	zs->next_out = (Bytef *) codec->buf;
	zs->avail_out = (uInt) codec->bufsize;

	if (codec->compress)
		rc = deflate(zs, finish ? Z_FINISH : Z_NO_FLUSH);
	else if (codec->done)
		rc = Z_STREAM_END;		/* nothing more to read: nothing to do */
	else
		rc = inflate(zs, Z_NO_FLUSH);

	/* Z_BUF_ERROR only means that no progress was possible */
	if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
	{
		*err = zs->msg ? zs->msg : "invalid gzip data";
		return false;
	}
	if (rc == Z_STREAM_END)
		codec->done = true;

	*in += avail - zs->avail_in;
	*in_len -= avail - zs->avail_in;
	*out_len = codec->bufsize - zs->avail_out;
	return true;
}

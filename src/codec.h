/*-------------------------------------------------------------------------
 *
 * codec.h
 *	  Streaming compression and decompression (zstd, lz4 frame, gzip),
 *	  shared by the module and the restore program.
 *
 * This header, like codec.c, uses no PostgreSQL header: the restore program
 * is a plain frontend binary.  Memory comes from malloc(), so that a codec
 * can live for a whole process whatever memory context is current, and an
 * ERROR that escapes a sink (the module's sinks ereport) leaves nothing to
 * clean up: the next walvault_codec_start() resets the stream.
 *
 * src/codec.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_CODEC_H
#define WALVAULT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum WalvaultCodecMethod
{
	WALVAULT_CODEC_NONE,
	WALVAULT_CODEC_GZIP,
	WALVAULT_CODEC_LZ4,
	WALVAULT_CODEC_ZSTD
} WalvaultCodecMethod;

typedef struct WalvaultCodec WalvaultCodec;

/* Receives output; returns false to stop the feed early. */
typedef bool (*WalvaultCodecSink) (void *arg, const char *data, size_t len);

extern WalvaultCodec *walvault_codec_create(WalvaultCodecMethod method,
											bool compress);
extern void walvault_codec_free(WalvaultCodec *codec);
extern bool walvault_codec_start(WalvaultCodec *codec, int level,
								 size_t size, const char **err);
extern bool walvault_codec_feed(WalvaultCodec *codec, const char *in,
								size_t in_len, bool finish,
								WalvaultCodecSink sink, void *arg,
								const char **err);
extern bool walvault_codec_finished(const WalvaultCodec *codec);
extern bool walvault_codec_covers_content(WalvaultCodecMethod method,
										  const unsigned char *head,
										  size_t len, uint64_t content_size);
extern const char *walvault_codec_suffix(WalvaultCodecMethod method);

/*
 * The names a file may have in an archive, FILE plus each method's suffix,
 * in the order every reader and writer looks for them: plain first
 * (cheapest, and it needs no decoder to be trusted), then zstd, lz4, gzip.
 */
#define WALVAULT_CODEC_LOOKUP_COUNT 4
extern const WalvaultCodecMethod walvault_codec_lookup_order[WALVAULT_CODEC_LOOKUP_COUNT];
extern const char *walvault_codec_name(WalvaultCodecMethod method);

#endif							/* WALVAULT_CODEC_H */

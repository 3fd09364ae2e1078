/*
 * bench/fill_history.c -- grow a saved pg_walvault history to N samples.
 *
 *     fill_history FILE N INTERVAL_MS
 *
 * FILE is pg_stat/pg_walvault_history.stat as the collector writes it at a
 * clean shutdown (see src/stats_file.c):
 *
 *     uint32 magic, uint32 format,
 *     uint64 token, uint32 nsamples, uint32 sample_size,
 *     nsamples samples of sample_size bytes (the first 8: int64 sample_time),
 *     uint32 CRC-32C of everything before it.
 *
 * It is rewritten in place with N samples: the saved ones repeated, their
 * times set INTERVAL_MS apart and ending at the newest saved one, and a new
 * CRC.  The token is kept, so the server loads it with the counters file
 * of the same shutdown.  bench/history_reader.sh uses it to start servers
 * with a full history of a million samples, which the collector would take
 * hours to fill.  Only the layout above is assumed; the magic number and
 * format are checked: format 2 is what stats_file.c writes today, format 1
 * (before issue 10) has the same history layout, so that a build from before
 * can be measured too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MAGIC	0x57564831	/* "WVH1" */
#define SFILE_FORMAT_MIN	1
#define SFILE_FORMAT_MAX	2
#define HEAD_SIZE		24			/* magic, format, token, nsamples, size */

static uint32_t crc_table[256];

/* CRC-32C (Castagnoli), reflected, as PostgreSQL's pg_crc32c computes it. */
static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++)
	{
		uint32_t	c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78 : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t
crc_update(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return crc;
}

static void
die(const char *what)
{
	fprintf(stderr, "fill_history: %s: %s\n", what, errno ? strerror(errno) : "bad input");
	exit(1);
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	long		size;
	unsigned char *old;
	unsigned char *out;
	uint32_t	magic, format, nsamples, sample_size, crc, stored_crc;
	uint64_t	n;
	int64_t		interval_us, newest;
	size_t		out_len;

	if (argc != 4)
	{
		fprintf(stderr, "usage: fill_history FILE N INTERVAL_MS\n");
		return 2;
	}
	n = strtoull(argv[2], NULL, 10);
	interval_us = strtoll(argv[3], NULL, 10) * 1000;
	crc_init();

	errno = 0;
	if ((f = fopen(argv[1], "rb")) == NULL)
		die(argv[1]);
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < HEAD_SIZE + 4 ||
		fseek(f, 0, SEEK_SET) != 0)
		die("size");
	if ((old = malloc(size)) == NULL || fread(old, size, 1, f) != 1)
		die("read");
	fclose(f);

	memcpy(&magic, old, 4);
	memcpy(&format, old + 4, 4);
	memcpy(&nsamples, old + 16, 4);
	memcpy(&sample_size, old + 20, 4);
	memcpy(&stored_crc, old + size - 4, 4);
	errno = 0;
	if (magic != HISTORY_MAGIC ||
		format < SFILE_FORMAT_MIN || format > SFILE_FORMAT_MAX)
		die("not a history file of the format this program knows");
	if (nsamples == 0 || sample_size < 8 ||
		(long) (HEAD_SIZE + (uint64_t) nsamples * sample_size + 4) != size)
		die("inconsistent header");
	crc = crc_update(0xFFFFFFFF, old, size - 4) ^ 0xFFFFFFFF;
	if (crc != stored_crc)
		die("checksum mismatch in the input");
	if (n == 0 || n > 1000000)
		die("N must be 1..1000000");

	out_len = HEAD_SIZE + n * sample_size + 4;
	if ((out = malloc(out_len)) == NULL)
		die("malloc");
	memcpy(out, old, HEAD_SIZE);
	memcpy(out + 16, &(uint32_t) {(uint32_t) n}, 4);
	memcpy(&newest, old + HEAD_SIZE + (uint64_t) (nsamples - 1) * sample_size, 8);
	for (uint64_t i = 0; i < n; i++)
	{
		unsigned char *s = out + HEAD_SIZE + i * sample_size;
		int64_t		t = newest - (int64_t) (n - 1 - i) * interval_us;

		memcpy(s, old + HEAD_SIZE + (i % nsamples) * sample_size, sample_size);
		memcpy(s, &t, 8);
	}
	crc = crc_update(0xFFFFFFFF, out, out_len - 4) ^ 0xFFFFFFFF;
	memcpy(out + out_len - 4, &crc, 4);

	errno = 0;
	if ((f = fopen(argv[1], "wb")) == NULL ||
		fwrite(out, out_len, 1, f) != 1 || fclose(f) != 0)
		die("write");
	printf("%llu samples of %u bytes, %zu bytes\n",
		   (unsigned long long) n, sample_size, out_len);
	return 0;
}

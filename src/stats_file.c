/*-------------------------------------------------------------------------
 *
 * stats_file.c
 *	  Persistence of the statistics across a clean restart.
 *
 * Two files in pg_stat/, both written as "<file>.tmp" and then put in place
 * with durable_rename(), both read once at startup and removed at once, so
 * that a crash never brings back numbers from before it:
 *
 * - pg_walvault.stat: the statistics of the fixed block (WalvaultStats,
 *	 written whole).  Written by the
 *	 postmaster when it exits cleanly, after the archiver's last cycle, so it
 *	 includes the files the archiver archived at shutdown.  Loaded by the
 *	 postmaster when it creates shared memory.
 *
 * - pg_walvault_history.stat: the history ring.  Written by the collector
 *	 when it exits (it cannot know whether this is a shutdown), loaded by the
 *	 collector when it creates the ring.  It carries the token of the server
 *	 run that wrote it, and is only loaded if the counters file loaded at
 *	 startup carries the same token: after a crash there is no counters
 *	 file, so an old history file is ignored.
 *
 * With pg_walvault.save_stats off nothing is written and old files are
 * removed at startup.  Files have a magic number, a version and a CRC; a
 * file that fails any check is ignored with a LOG message.
 *
 * src/stats_file.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"

#include "pg_walvault.h"

#define STATS_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pg_walvault.stat"
#define HISTORY_FILE	PGSTAT_STAT_PERMANENT_DIRECTORY "/pg_walvault_history.stat"
#define STATS_MAGIC		0x57565331	/* "WVS1" */
#define HISTORY_MAGIC	0x57564831	/* "WVH1" */
/* Bump when a struct written to a file changes. 2: WalvaultStats. */
#define SFILE_FORMAT	2

/* What the counters file holds. */
typedef struct SfileCounters
{
	uint64		token;
	WalvaultStats stats;
} SfileCounters;

/* Header of the history file, followed by nsamples WalvaultSample. */
typedef struct SfileHistoryHeader
{
	uint64		token;
	uint32		nsamples;
	uint32		sample_size;
} SfileHistoryHeader;

static bool sfile_write(const char *path, uint32 magic, const void *part1,
						size_t len1, const void *part2, size_t len2);
static void *sfile_read(const char *path, uint32 magic, size_t *len);

/*
 * Postmaster, when creating shared memory: load the counters saved at the
 * last clean shutdown, then remove the file.
 */
void
walvault_stats_load(void)
{
	SfileCounters *c;
	size_t		len;

	if (!walvault_save_stats)
	{
		unlink(STATS_FILE);
		unlink(HISTORY_FILE);
		return;
	}

	c = sfile_read(STATS_FILE, STATS_MAGIC, &len);
	unlink(STATS_FILE);
	if (c == NULL)
		return;
	if (len != sizeof(SfileCounters))
	{
		ereport(LOG,
				(errmsg("ignoring pg_walvault statistics file \"%s\": unexpected size",
						STATS_FILE)));
		pfree(c);
		return;
	}

	walvault_stats_set(&c->stats);
	walvault_shared->loaded_token = c->token;
	pfree(c);
}

/*
 * Postmaster exit callback: save the counters, only on a clean exit.
 */
void
walvault_stats_save(int code, Datum arg)
{
	SfileCounters c;

	if (code != 0 || !walvault_save_stats || walvault_shared == NULL)
		return;

	memset(&c, 0, sizeof(c));
	c.token = walvault_shared->stats_token;
	walvault_stats_copy(&c.stats);

	(void) sfile_write(STATS_FILE, STATS_MAGIC, &c, sizeof(c), NULL, 0);
}

/*
 * Collector, at exit: save the history ring.  The copy is taken under the
 * history lock only (history.c), which nothing on the archive path takes.
 */
void
walvault_history_save(void)
{
	SfileHistoryHeader hdr;
	WalvaultSample *samples;
	int			n;

	if (!walvault_save_stats)
		return;

	samples = walvault_history_copy(&n);
	if (samples == NULL)
		return;
	hdr.token = walvault_shared->stats_token;
	hdr.nsamples = n;
	hdr.sample_size = sizeof(WalvaultSample);
	(void) sfile_write(HISTORY_FILE, HISTORY_MAGIC, &hdr, sizeof(hdr),
					   samples, sizeof(WalvaultSample) * n);
	pfree(samples);
}

/*
 * Collector, when it creates the ring: load the history saved with the
 * counters loaded at startup (if any), then remove the file.
 */
void
walvault_history_load(WalvaultHistory *hist)
{
	char	   *data;
	size_t		len;
	SfileHistoryHeader *hdr;
	WalvaultSample *samples;
	int			skip;

	data = sfile_read(HISTORY_FILE, HISTORY_MAGIC, &len);
	unlink(HISTORY_FILE);
	if (data == NULL)
		return;

	hdr = (SfileHistoryHeader *) data;
	if (len < sizeof(SfileHistoryHeader) ||
		hdr->sample_size != sizeof(WalvaultSample) ||
		len != sizeof(SfileHistoryHeader) + (size_t) hdr->nsamples * sizeof(WalvaultSample))
	{
		ereport(LOG,
				(errmsg("ignoring pg_walvault history file \"%s\": unexpected size",
						HISTORY_FILE)));
		pfree(data);
		return;
	}
	if (hdr->token == 0 || hdr->token != walvault_shared->loaded_token)
	{
		/* not from the shutdown whose counters we loaded: e.g. a crash */
		pfree(data);
		return;
	}

	samples = (WalvaultSample *) (data + sizeof(SfileHistoryHeader));
	/* a ring smaller than the saved history keeps the newest samples */
	skip = Max((int) hdr->nsamples - hist->capacity, 0);
	walvault_history_append(hist, samples + skip, hdr->nsamples - skip);
	pfree(data);
}

/*
 * Collector, when a ring already exists: a history file is then left over
 * from an earlier collector of this run, and must not outlive it.
 */
void
walvault_history_discard_file(void)
{
	unlink(HISTORY_FILE);
}

/*
 * Write magic, part1, part2 and a CRC of all of it to path.tmp, then
 * durable_rename() it to path.  Failures are logged, never raised: losing
 * statistics must not turn a clean shutdown into a failed one.
 */
static bool
sfile_write(const char *path, uint32 magic, const void *part1, size_t len1,
			const void *part2, size_t len2)
{
	char		tmppath[MAXPGPATH];
	FILE	   *file;
	pg_crc32c	crc;
	uint32		version = SFILE_FORMAT;

	snprintf(tmppath, sizeof(tmppath), "%s.tmp", path);

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &magic, sizeof(magic));
	COMP_CRC32C(crc, &version, sizeof(version));
	COMP_CRC32C(crc, part1, len1);
	if (len2 > 0)
		COMP_CRC32C(crc, part2, len2);
	FIN_CRC32C(crc);

	file = AllocateFile(tmppath, PG_BINARY_W);
	if (file == NULL)
		goto error;
	if (fwrite(&magic, sizeof(magic), 1, file) != 1 ||
		fwrite(&version, sizeof(version), 1, file) != 1 ||
		fwrite(part1, len1, 1, file) != 1 ||
		(len2 > 0 && fwrite(part2, len2, 1, file) != 1) ||
		fwrite(&crc, sizeof(crc), 1, file) != 1)
		goto error;
	if (FreeFile(file) != 0)
	{
		file = NULL;
		goto error;
	}
	return durable_rename(tmppath, path, LOG) == 0;

error:
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write pg_walvault statistics file \"%s\": %m",
					tmppath)));
	if (file != NULL)
		FreeFile(file);
	unlink(tmppath);
	return false;
}

/*
 * Read a file written by sfile_write; returns its payload (palloc'd) and
 * length, or NULL if there is none or it fails a check.
 */
static void *
sfile_read(const char *path, uint32 magic, size_t *len)
{
	FILE	   *file;
	long		size;
	char	   *buf;
	uint32		file_magic;
	uint32		version;
	pg_crc32c	crc;
	pg_crc32c	file_crc;
	size_t		payload;

	file = AllocateFile(path, PG_BINARY_R);
	if (file == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read pg_walvault statistics file \"%s\": %m",
							path)));
		return NULL;
	}
	if (fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 ||
		fseek(file, 0, SEEK_SET) != 0 ||
		size < (long) (2 * sizeof(uint32) + sizeof(pg_crc32c)))
		goto corrupt;

	payload = size - 2 * sizeof(uint32) - sizeof(pg_crc32c);
	buf = palloc(Max(payload, 1));
	if (fread(&file_magic, sizeof(file_magic), 1, file) != 1 ||
		fread(&version, sizeof(version), 1, file) != 1 ||
		(payload > 0 && fread(buf, payload, 1, file) != 1) ||
		fread(&file_crc, sizeof(file_crc), 1, file) != 1)
	{
		pfree(buf);
		goto corrupt;
	}
	FreeFile(file);
	file = NULL;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &file_magic, sizeof(file_magic));
	COMP_CRC32C(crc, &version, sizeof(version));
	COMP_CRC32C(crc, buf, payload);
	FIN_CRC32C(crc);
	if (file_magic != magic || version != SFILE_FORMAT ||
		!EQ_CRC32C(crc, file_crc))
	{
		pfree(buf);
		goto corrupt;
	}
	*len = payload;
	return buf;

corrupt:
	if (file != NULL)
		FreeFile(file);
	ereport(LOG,
			(errmsg("ignoring corrupt pg_walvault statistics file \"%s\"", path)));
	return NULL;
}

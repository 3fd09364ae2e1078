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
 *	 written whole).  Written by the postmaster when it exits after a clean
 *	 shutdown, after the archiver's last cycle, so it includes the files the
 *	 archiver archived at shutdown.  Loaded by the postmaster when it creates
 *	 shared memory.
 *
 * - pg_walvault_history.stat: the history ring.  Written by the collector
 *	 when it exits (it cannot know whether this is a shutdown), loaded by the
 *	 collector when it creates the ring.  It carries the token of the server
 *	 run that wrote it, and is only loaded if the counters file loaded at
 *	 startup carries the same token: after a crash there is no counters
 *	 file, so an old history file is ignored.
 *
 * A clean shutdown is one that ended with a shutdown checkpoint (or, on a
 * standby, a shutdown restartpoint), which the control file records.  An
 * immediate shutdown ("pg_ctl stop -m immediate") skips it and leads to
 * crash recovery at the next start; like the server's own statistics, ours
 * then start from zero, although the postmaster exits with status 0.
 *
 * Reading never trusts a file: it is removed before it is parsed (a file
 * that upsets us cannot do so at the next start too), its magic number,
 * format version and size are checked before anything is allocated, and its
 * CRC before anything is used.  A file that fails a check is reported with
 * one WARNING and ignored; the server starts in any case.
 *
 * With pg_walvault.save_stats off nothing is written and old files are
 * removed at startup.
 *
 * src/stats_file.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog_internal.h"
#include "catalog/pg_control.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"

#include "pg_walvault.h"

#define STATS_FILE		PGSTAT_STAT_PERMANENT_DIRECTORY "/pg_walvault.stat"
#define HISTORY_FILE	PGSTAT_STAT_PERMANENT_DIRECTORY "/pg_walvault_history.stat"
#define STATS_MAGIC		0x57565331	/* "WVS1" */
#define HISTORY_MAGIC	0x57564831	/* "WVH1" */
/*
 * Bump when a struct written to a file changes.  2: WalvaultStats; 3: the
 * object store's counters in WalvaultCounters.
 */
#define SFILE_FORMAT	3
/* Most samples a history file may hold: the largest history_size. */
#define SFILE_MAX_SAMPLES	1000000

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

/* Every file: magic, format, payload, CRC of all that precedes it. */
#define SFILE_HEAD_SIZE		(2 * sizeof(uint32))
#define SFILE_OVERHEAD		(SFILE_HEAD_SIZE + sizeof(pg_crc32c))

/* A file being read. */
typedef struct SfileReader
{
	const char *path;
	FILE	   *file;
	off_t		size;			/* of the file, from fstat() */
	pg_crc32c	crc;			/* of what was read so far */
} SfileReader;

static bool sfile_clean_shutdown(void);
static bool sfile_write(const char *path, uint32 magic, const void *part1,
						size_t len1, const void *part2, size_t len2);
static bool sfile_open(SfileReader *r, const char *path, uint32 magic);
static bool sfile_read(SfileReader *r, void *buf, size_t len);
static void sfile_terminate_name(char *name, size_t size);
static bool sfile_check_crc(SfileReader *r);
static void sfile_close(SfileReader *r);
static void sfile_reject(SfileReader *r, const char *detail_fmt,...) pg_attribute_printf(2, 3);

/*
 * Postmaster, when creating shared memory: load the statistics saved at the
 * last clean shutdown; the file is gone afterwards, whatever it held.
 */
void
walvault_stats_load(void)
{
	SfileReader r;
	SfileCounters c;
	size_t		expected = SFILE_OVERHEAD + sizeof(SfileCounters);

	if (!walvault_save_stats)
	{
		unlink(STATS_FILE);
		unlink(HISTORY_FILE);
		return;
	}

	if (!sfile_open(&r, STATS_FILE, STATS_MAGIC))
		return;
	if (r.size != (off_t) expected)
	{
		sfile_reject(&r, "The file has %lld bytes, %zu were expected.",
					 (long long) r.size, expected);
		return;
	}
	if (!sfile_read(&r, &c, sizeof(c)) || !sfile_check_crc(&r))
		return;
	sfile_close(&r);

	/*
	 * The CRC says the file holds what was written, not that we wrote it:
	 * before anything reads them as strings, they end within their arrays,
	 * and what is shown as a WAL file's name is one.
	 */
	sfile_terminate_name(c.stats.last_archived_wal,
						 sizeof(c.stats.last_archived_wal));
	sfile_terminate_name(c.stats.last_failed_wal,
						 sizeof(c.stats.last_failed_wal));
	c.stats.last_error[sizeof(c.stats.last_error) - 1] = '\0';

	walvault_stats_set(&c.stats);
	walvault_shared->loaded_token = c.token;
}

/* A WAL file name loaded from a file: terminated, and emptied if not one */
static void
sfile_terminate_name(char *name, size_t size)
{
	name[size - 1] = '\0';
	if (name[0] != '\0' && !walvault_is_archivable_name(name))
		name[0] = '\0';
}

/*
 * Postmaster exit callback: save the statistics, only after a clean
 * shutdown.
 */
void
walvault_stats_save(int code, Datum arg)
{
	SfileCounters c;

	if (code != 0 || !walvault_save_stats || walvault_shared == NULL)
		return;
	if (!sfile_clean_shutdown())
	{
		ereport(LOG,
				(errmsg("pg_walvault statistics not saved: the server did not shut down cleanly"),
				 errdetail("Statistics start from zero after a crash or an immediate shutdown.")));
		return;
	}

	memset(&c, 0, sizeof(c));
	c.token = walvault_shared->stats_token;
	walvault_stats_copy(&c.stats);
	(void) sfile_write(STATS_FILE, STATS_MAGIC, &c, sizeof(c), NULL, 0);
}

/*
 * Did the server shut down cleanly?  The shutdown checkpoint (or shutdown
 * restartpoint on a standby) marks the control file; an immediate shutdown
 * leaves it "in production" or "in archive recovery", as a crash does.
 * Read with plain system calls: nothing here may raise an error in an exit
 * callback.  In doubt (unreadable, damaged), the answer is no.
 */
static bool
sfile_clean_shutdown(void)
{
	ControlFileData control;
	pg_crc32c	crc;
	int			fd;
	ssize_t		len;

	fd = open(XLOG_CONTROL_FILE, O_RDONLY | PG_BINARY, 0);
	if (fd < 0)
		return false;
	len = read(fd, &control, sizeof(control));
	close(fd);
	if (len != sizeof(control))
		return false;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &control, offsetof(ControlFileData, crc));
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, control.crc) ||
		control.pg_control_version != PG_CONTROL_VERSION)
		return false;

	return control.state == DB_SHUTDOWNED ||
		control.state == DB_SHUTDOWNED_IN_RECOVERY;
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
 * counters loaded at startup (if any); the file is gone afterwards.
 */
void
walvault_history_load(WalvaultHistory *hist)
{
	SfileReader r;
	SfileHistoryHeader hdr;
	WalvaultSample *samples;
	size_t		expected;
	int			skip;

	if (!sfile_open(&r, HISTORY_FILE, HISTORY_MAGIC))
		return;
	if (r.size < (off_t) (SFILE_OVERHEAD + sizeof(hdr)))
	{
		sfile_reject(&r, "The file has %lld bytes, too few for its header.",
					 (long long) r.size);
		return;
	}
	if (!sfile_read(&r, &hdr, sizeof(hdr)))
		return;
	if (hdr.sample_size != sizeof(WalvaultSample))
	{
		sfile_reject(&r, "Its samples have %u bytes, %zu were expected.",
					 hdr.sample_size, sizeof(WalvaultSample));
		return;
	}
	if (hdr.nsamples > SFILE_MAX_SAMPLES)
	{
		sfile_reject(&r, "It claims %u samples, more than the %d a history may hold.",
					 hdr.nsamples, SFILE_MAX_SAMPLES);
		return;
	}
	expected = SFILE_OVERHEAD + sizeof(hdr) +
		(size_t) hdr.nsamples * sizeof(WalvaultSample);
	if (r.size != (off_t) expected)
	{
		sfile_reject(&r, "The file has %lld bytes, %zu were expected for %u samples.",
					 (long long) r.size, expected, hdr.nsamples);
		return;
	}
	if (hdr.token == 0 || hdr.token != walvault_shared->loaded_token)
	{
		/* not from the shutdown whose counters we loaded: e.g. a crash */
		sfile_close(&r);
		return;
	}

	samples = palloc(sizeof(WalvaultSample) * Max(hdr.nsamples, 1));
	if (!sfile_read(&r, samples, sizeof(WalvaultSample) * hdr.nsamples) ||
		!sfile_check_crc(&r))
	{
		pfree(samples);
		return;
	}
	sfile_close(&r);

	/* a ring smaller than the saved history keeps the newest samples */
	skip = Max((int) hdr.nsamples - hist->capacity, 0);
	walvault_history_append(hist, samples + skip, hdr.nsamples - skip);
	pfree(samples);
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
 * Write magic, format, part1, part2 and a CRC of all of it to path.tmp,
 * then durable_rename() it to path.  Failures are logged, never raised:
 * losing statistics must not turn a clean shutdown into a failed one.
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
 * Open path, remove it, and check its magic number and format.  Returns
 * false when there is no file, or (with a WARNING) when it cannot be read
 * or is not one of ours in our format.
 */
static bool
sfile_open(SfileReader *r, const char *path, uint32 magic)
{
	struct stat st;
	uint32		file_magic;
	uint32		version;

	r->path = path;
	r->file = AllocateFile(path, PG_BINARY_R);
	if (r->file == NULL)
	{
		if (errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not read pg_walvault statistics file \"%s\": %m",
							path)));
		unlink(path);
		return false;
	}
	/* read once: gone before anything in it is believed */
	unlink(path);
	INIT_CRC32C(r->crc);

	if (fstat(fileno(r->file), &st) != 0)
	{
		int			save_errno = errno;

		sfile_close(r);
		errno = save_errno;
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not stat pg_walvault statistics file \"%s\": %m",
						path)));
		return false;
	}
	r->size = st.st_size;

	if (r->size < (off_t) SFILE_OVERHEAD)
	{
		sfile_reject(r, "The file has %lld bytes, too few for its header.",
					 (long long) r->size);
		return false;
	}
	if (!sfile_read(r, &file_magic, sizeof(file_magic)) ||
		!sfile_read(r, &version, sizeof(version)))
		return false;
	if (file_magic != magic)
	{
		sfile_reject(r, "The file does not start with the magic number of a pg_walvault statistics file.");
		return false;
	}
	if (version != SFILE_FORMAT)
	{
		sfile_reject(r, "The file is in format %u; this version of pg_walvault reads format %d.",
					 version, SFILE_FORMAT);
		return false;
	}
	return true;
}

/*
 * Read len bytes into buf and add them to the CRC.  On failure the file is
 * rejected (and closed).
 */
static bool
sfile_read(SfileReader *r, void *buf, size_t len)
{
	if (len > 0 && fread(buf, len, 1, r->file) != 1)
	{
		if (ferror(r->file))
		{
			int			save_errno = errno;

			sfile_close(r);
			errno = save_errno;
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not read pg_walvault statistics file \"%s\": %m",
							r->path)));
		}
		else
			sfile_reject(r, "The file ended early.");
		return false;
	}
	COMP_CRC32C(r->crc, buf, len);
	return true;
}

/* Read the stored CRC, which must match what was read; else reject. */
static bool
sfile_check_crc(SfileReader *r)
{
	pg_crc32c	crc = r->crc;
	pg_crc32c	file_crc;

	FIN_CRC32C(crc);
	if (fread(&file_crc, sizeof(file_crc), 1, r->file) != 1 ||
		!EQ_CRC32C(crc, file_crc))
	{
		sfile_reject(r, "Its checksum does not match its contents.");
		return false;
	}
	return true;
}

static void
sfile_close(SfileReader *r)
{
	if (r->file != NULL)
		FreeFile(r->file);
	r->file = NULL;
}

/* Close a file that failed a check, and say once why it is ignored. */
static void
sfile_reject(SfileReader *r, const char *detail_fmt,...)
{
	char		detail[256];
	va_list		args;

	sfile_close(r);
	va_start(args, detail_fmt);
	vsnprintf(detail, sizeof(detail), detail_fmt, args);
	va_end(args);
	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("ignoring invalid pg_walvault statistics file \"%s\"",
					r->path),
			 errdetail_internal("%s The file was removed; these statistics start from zero.",
								detail)));
}

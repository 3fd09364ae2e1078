/*-------------------------------------------------------------------------
 *
 * target_directory.c
 *	  Durable copy of one WAL file into pg_walvault.archive_directory,
 *	  compressed or not.
 *
 * A file counts as archived only once it is durable: it is written to a
 * temporary file in the archive directory (mode 0600), fsynced, published
 * under its name, and the directory is fsynced.  With
 * pg_walvault.compression set, the stored file is the compressed stream,
 * named with the method's suffix (.zst, .lz4, .gz), which
 * pg_walvault_restore recognises.
 *
 * A file that is already in the archive is never overwritten: the server
 * asks again for a file that was archived just before a crash (the .done
 * was not yet written), so identical content is success, and different
 * content is an error that leaves both files alone.  "Already in the
 * archive" means under any of the names pg_walvault_restore would look for,
 * in its order: the compression setting may have changed since, and two
 * copies with different content must never exist.  A compressed copy is
 * compared by decompressing it.  An identical copy counts only once it is
 * durable too: the earlier attempt may have renamed it and then failed to
 * fsync it (EIO, a network file system), so it is fsynced again, with its
 * directory, and a failure there is a failure; what is compared is what is
 * on disk, not what the page cache kept.
 *
 * Looking first and renaming afterwards would leave a window in which
 * another writer (a second cluster wrongly given the same directory)
 * creates the file and our rename replaces it.  Publishing is therefore
 * atomic: rename with RENAME_NOREPLACE (or link() and unlink() where the
 * file system cannot), and a file found there at that moment is compared
 * like one found before.
 *
 * Temporary files are named .FILE.walvault.SYSID.HOST.PID.tmp: this
 * cluster's system identifier and host name, and the pid of the writer.  A
 * crash leaves them behind; the coordinator removes those of its own
 * cluster and host whose writer is gone, and never those of another
 * cluster or host (a primary and an archive_mode = always standby may
 * share the directory over a network file system, and a pid means nothing
 * on another host).
 *
 * Such a name is predictable, and whoever can write to the archive
 * directory can put something under it first: a symbolic or hard link to a
 * file of the server's user, which opening the name to write would
 * overwrite with WAL.  A temporary file is therefore always created, never
 * opened (O_CREAT | O_EXCL, and O_NOFOLLOW), and where the name is taken
 * the writer takes another, .FILE.walvault.SYSID.HOST.PID.NONCE.tmp with
 * random hex digits, which no one can take ahead of it.  What was in the
 * way is left alone.
 *
 * A directory that is, or resolves into, the data directory or pg_wal is
 * refused (cdir_outside_data_directory()).
 *
 * Group fsync of the directory.  With many small files (1 MB segments, a
 * burst of pg_switch_wal()) the fsync of the directory after each rename is
 * a large part of the cost of a file, and it is the same work for every
 * file: one fsync of a directory makes durable every rename into it that
 * completed before the fsync began.  So processes that renamed at about the
 * same time share one, as PostgreSQL's backends share a WAL flush
 * (WalvaultDirSync in walvault_shmem.h):
 *
 * - after its rename, a process takes a ticket (the next number, under the
 *	 spinlock): every ticket up to it belongs to a rename already done;
 * - it may report its file archived once synced_upto >= its ticket, i.e. an
 *	 fsync that began after its rename has succeeded;
 * - until then, if nobody is syncing, it becomes the leader: it marks
 *	 itself syncing, snapshots the highest ticket handed out, fsyncs the
 *	 directory, publishes synced_upto = snapshot (failed_upto on failure)
 *	 and wakes the others (a condition variable); otherwise it sleeps until
 *	 woken and looks again.
 *
 * A ticket covered by a failed fsync fails its file: the server asks again,
 * and the next attempt finds the file in the archive and fsyncs it and the
 * directory by itself (cdir_existing()), so an fsync error is never taken
 * for success by a second fsync.  Nothing between becoming leader and
 * publishing can raise an ERROR or process an interrupt, so the others never
 * wait for a leader that is gone; a leader killed outright (kill -9) makes
 * the postmaster reinitialise shared memory, and no file of the interrupted
 * group was reported.  Tickets are for one directory path: a process whose
 * directory differs from the tickets' while some are outstanding (a reload
 * in between) fsyncs its own directory itself.  Without shared memory (not
 * preloaded) every process fsyncs by itself, as before.  The archiver
 * archiving by itself (a pool of 0, at shutdown) takes part like a worker;
 * alone, it leads every fsync, which costs two spinlock round trips.
 *
 * Batches.  A worker may take several queued files at once
 * (pg_walvault.batch_size); cdir_stage() then copies them all before the
 * first fsync, and renames them all before one fsync of the directory, for
 * which it takes one ticket per rename.  cdir_archive() reports each of
 * them afterwards.
 *
 * Errors are raised with ereport(ERROR); the caller (archive_file.c) traps
 * them.  A temporary file left by an error or by process exit is removed by
 * cdir_abort().
 *
 * src/target_directory.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_walvault.h"

#define CDIR_BUFSIZE	(1024 * 1024)
/* names tried for a temporary file before giving up: see cdir_create_temp() */
#define CDIR_TEMP_ATTEMPTS	10
/* hex digits of the random part of a temporary file's other names */
#define CDIR_NONCE_LEN		16
/* start writeback of the destination every this many bytes */
#define CDIR_FLUSH_BYTES	(2 * 1024 * 1024)
/* a process waiting for a group fsync looks again this often, woken or not */
#define CDIR_SYNC_RECHECK_MS	1000

/*
 * A test-only hook, inert unless the server's environment has
 * PG_WALVAULT_TEST_DIRSYNC_HOLD=DIR (t/060_group_fsync.pl, t/062_batch.pl).
 * A leader of a group fsync that finds DIR/hold (or DIR/hold.N, and has N
 * or more renames of its own to make durable: a batch) renames it to
 * DIR/held.PID and waits, before it snapshots the tickets, until DIR/go
 * exists; and after every group fsync the leader appends "FIRST LAST" (the
 * tickets it covered, one per rename) to DIR/fsyncs.  A test thereby holds
 * the fsync that must cover renames already done, without timing guesses,
 * and sees what one fsync covered.
 */
#define CDIR_TEST_HOLD_ENV	"PG_WALVAULT_TEST_DIRSYNC_HOLD"

/* An open destination file, with its early-writeback position. */
typedef struct CdirDest
{
	int			fd;
	const char *path;
	uint64		written;
	uint64		flushed;
	uint32		wait_event;		/* what pg_stat_activity shows meanwhile */
} CdirDest;

/* Temporary file that exists while a copy is under way, "" otherwise. */
static char cdir_temp_path[MAXPGPATH] = "";
/* I/O buffer, allocated once per process. */
static char *cdir_buf = NULL;
/* Compressors, made once per process when first needed, by method. */
static WalvaultCodec *cdir_compressors[WALVAULT_CODEC_ZSTD + 1];

/*
 * The last directory cdir_outside_data_directory() found outside the data
 * directory, and which directory (device and inode) its path led to then.
 * Resolving the path and comparing every directory above it costs a dozen
 * system calls, once per file otherwise; a path that leads to the same
 * directory as before is judged as before.  Only moving that very
 * directory into the data directory and re-pointing a link in the path to
 * follow it would escape, and that is no accident.
 */
static struct
{
	bool		valid;
	char		dir[MAXPGPATH];
	struct stat st;
}			cdir_outside_known;

/*
 * The files of a worker's batch that cdir_stage() archived together, until
 * cdir_archive() reports each.  COPIED: in its temporary file, its
 * writeback started; RENAMED: under its name, which may not be durable yet;
 * DURABLE: the directory was fsynced after the rename; FAILED: an error
 * came after the rename (cdir_abort()), so the name may not be durable,
 * and a later fsync that succeeds would not prove that it is: the file
 * fails, and the server's next attempt judges it (cdir_existing()).
 * Nothing is kept beyond the next batch.
 */
typedef enum CdirStagedState
{
	CDIR_STAGED_COPIED,
	CDIR_STAGED_RENAMED,
	CDIR_STAGED_DURABLE,
	CDIR_STAGED_FAILED
} CdirStagedState;

typedef struct CdirStaged
{
	WalvaultFileName file;
	char		temp[MAXPGPATH];	/* while COPIED */
	int			fd;				/* while COPIED and not yet fsynced, or -1 */
	CdirStagedState state;
	uint64		bytes;			/* the WAL file's size */
	uint64		stored;			/* the archive file's */
} CdirStaged;

static struct
{
	int			n;
	char		dir[MAXPGPATH]; /* where they went */
	WalvaultCodecMethod method; /* how they were stored */
	CdirStaged	files[WALVAULT_MAX_BATCH];
}			cdir_staged;

static uint64 cdir_archive(const char *file, const char *path,
						   uint64 *stored);
static void cdir_abort(void);
static void cdir_check(int elevel);
static void cdir_cleanup(void);
static void cdir_ensure_buffers(void);
static bool cdir_outside_data_directory(const char *dir, int elevel);
static int	cdir_create_temp(const char *dir, const char *file);
static uint64 cdir_existing(const char *path, const char *dest,
							WalvaultCodecMethod method, const char *dir);
static bool cdir_publish(const char *temp, const char *dest, const char *dir);
static bool cdir_rename_new(const char *temp, const char *dest);
static bool cdir_find_existing(const char *dir, const char *file, char *dest,
							   WalvaultCodecMethod *method);
static void cdir_stage(WalvaultFileName *files, int nfiles);
static bool cdir_staged_take(const char *file, const char *dir,
							 WalvaultCodecMethod method, uint64 *bytes,
							 uint64 *stored);
static void cdir_remove_temp(const char *path);
static void cdir_fsync(const char *path, bool isdir);
static void cdir_sync_dir(const char *dir, int nrenames);
static int	cdir_fsync_dir_now(const char *dir);
static const char *cdir_test_dir(void);
static void cdir_test_hold(int nrenames);
static void cdir_test_covered(uint64 first, uint64 last);
static void cdir_drop_cache(const char *path);
static const char *cdir_temp_tag(void);
static bool cdir_equal(const char *src, const char *archived,
					   WalvaultCodecMethod method);
static uint64 cdir_copy(const char *src, int dstfd, const char *dst,
						bool keep_open);
static uint64 cdir_compress(const char *src, int dstfd, const char *dst,
							const WalvaultCompression *compression,
							uint64 *stored, bool keep_open);
static WalvaultCodec *cdir_codec(WalvaultCodecMethod method, int level,
								 size_t size);
static bool cdir_write_sink(void *arg, const char *data, size_t len);
static size_t cdir_transfer(int fd, const char *path, char *buf, size_t len,
							 bool writing, uint32 wait_event);
static ssize_t cdir_copy_chunk(int srcfd, const char *src, int dstfd,
							   const char *dst);
static void cdir_dest_written(CdirDest *dest, size_t len);
static void cdir_dest_close(CdirDest *dest);
static void cdir_dest_finish(CdirDest *dest, bool keep_open);
static int	cdir_open(const char *path, int flags);

const WalvaultTarget walvault_target_directory = {
	.setting = "pg_walvault.archive_directory",
	.archive = cdir_archive,
	.abort = cdir_abort,
	.check = cdir_check,
	.cleanup = cdir_cleanup,
	.stage = cdir_stage,
};

/*
 * Copy the WAL file at path (relative to the data directory) into the
 * archive directory under the name file (plus the suffix of the compression
 * method).  Returns the number of bytes archived; *stored gets the size of
 * the archive file.
 */
static uint64
cdir_archive(const char *file, const char *path, uint64 *stored)
{
	WalvaultCompression compression = walvault_compression;
	const char *dir = walvault_archive_directory;
	char		dest[MAXPGPATH];
	WalvaultCodecMethod method;
	uint64		bytes;
	int			tempfd;

	/* archived with the others of a batch just now (cdir_stage()) */
	if (cdir_staged_take(file, dir, compression.method, &bytes, stored))
		return bytes;

	cdir_ensure_buffers();

	/* pg_wal would find every file there, as itself: refused first */
	(void) cdir_outside_data_directory(dir, ERROR);

	/* the archive carries this system's marker before any file */
	walvault_marker_ensure(&walvault_target_directory, file);

	/* in the archive already, under any name the restore program reads? */
	if (cdir_find_existing(dir, file, dest, &method))
	{
		*stored = 0;			/* nothing was written */
		return cdir_existing(path, dest, method, dir);
	}

	snprintf(dest, sizeof(dest), "%s/%s%s", dir, file,
			 walvault_codec_suffix(compression.method));
	tempfd = cdir_create_temp(dir, file);
	if (compression.method == WALVAULT_CODEC_NONE)
		*stored = bytes = cdir_copy(path, tempfd, cdir_temp_path, false);
	else
		bytes = cdir_compress(path, tempfd, cdir_temp_path, &compression,
							  stored, false);

	if (!cdir_publish(cdir_temp_path, dest, dir))
	{
		/* it appeared meanwhile: ours goes, theirs is judged */
		cdir_abort();
		*stored = 0;
		return cdir_existing(path, dest, compression.method, dir);
	}
	return bytes;
}

/*
 * Is file in dir already, under any of the names the restore program looks
 * for?  If so, dest (MAXPGPATH) gets the name found and *method how the
 * file is stored under it.
 */
static bool
cdir_find_existing(const char *dir, const char *file, char *dest,
				   WalvaultCodecMethod *method)
{
	for (int i = 0; i < WALVAULT_CODEC_LOOKUP_COUNT; i++)
	{
		struct stat st;

		*method = walvault_codec_lookup_order[i];
		snprintf(dest, MAXPGPATH, "%s/%s%s", dir, file,
				 walvault_codec_suffix(*method));
		if (stat(dest, &st) == 0)
			return true;
		if (errno != ENOENT)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", dest)));
	}
	return false;
}

/*
 * Archive the files of a worker's batch together (the target's stage
 * callback), so that they share the work of becoming durable: copy each
 * into its temporary file and start its writeback, so that the disk gets
 * them all at once; fsync each (the first fsync waits for the writeback of
 * all, and ext4 commits the allocations of all in one journal transaction,
 * so the others have little left to do); rename each to its name; and make
 * every name durable with one fsync of the directory, shared with other
 * processes as in cdir_sync_dir().  cdir_archive() then reports each file
 * without doing anything again.
 *
 * A file already in the archive, or one that appears there meanwhile, is
 * left for cdir_archive() to judge, as is every file not yet renamed when
 * an ERROR comes: cdir_abort() removes the temporary files.  A file renamed
 * before the ERROR fails (CdirStaged).  A file is never reported before
 * the fsync of the directory that covers its rename, so a crash at any
 * point here only means that the server asks for the file again.
 */
static void
cdir_stage(WalvaultFileName *files, int nfiles)
{
	WalvaultCompression compression = walvault_compression;
	const char *dir = walvault_archive_directory;
	char		dest[MAXPGPATH];
	int			nrenamed = 0;

	/* nothing kept outlives its batch */
	cdir_staged.n = 0;
	if (nfiles < 2)
		return;

	cdir_ensure_buffers();
	(void) cdir_outside_data_directory(dir, ERROR);
	walvault_marker_ensure(&walvault_target_directory, files[0]);
	strlcpy(cdir_staged.dir, dir, sizeof(cdir_staged.dir));
	cdir_staged.method = compression.method;

	for (int i = 0; i < nfiles; i++)
	{
		CdirStaged *staged;
		char		src[MAXPGPATH];
		WalvaultCodecMethod method;
		int			fd;

		CHECK_FOR_INTERRUPTS();
		if (!walvault_is_archivable_name(files[i]) ||
			cdir_find_existing(dir, files[i], dest, &method))
			continue;			/* for cdir_archive() to judge */
		snprintf(src, sizeof(src), XLOGDIR "/%s", files[i]);
		fd = cdir_create_temp(dir, files[i]);

		/* the temporary file is the table's now (cdir_abort()) */
		staged = &cdir_staged.files[cdir_staged.n++];
		strlcpy(staged->file, files[i], sizeof(staged->file));
		strlcpy(staged->temp, cdir_temp_path, sizeof(staged->temp));
		staged->fd = fd;
		staged->state = CDIR_STAGED_COPIED;
		cdir_temp_path[0] = '\0';

		if (compression.method == WALVAULT_CODEC_NONE)
			staged->stored = staged->bytes =
				cdir_copy(src, fd, staged->temp, true);
		else
			staged->bytes = cdir_compress(src, fd, staged->temp,
										  &compression, &staged->stored,
										  true);
	}

	for (int i = 0; i < cdir_staged.n; i++)
	{
		CdirStaged *staged = &cdir_staged.files[i];
		CdirDest	tempdest = {staged->fd, staged->temp, 0, 0, 0};

		/* on an ERROR the descriptor is closed with the others (fd.c) */
		staged->fd = -1;
		cdir_dest_close(&tempdest);
	}

	for (int i = 0; i < cdir_staged.n; i++)
	{
		CdirStaged *staged = &cdir_staged.files[i];

		snprintf(dest, sizeof(dest), "%s/%s%s", dir, staged->file,
				 walvault_codec_suffix(compression.method));
		if (cdir_rename_new(staged->temp, dest))
		{
			staged->state = CDIR_STAGED_RENAMED;
			nrenamed++;
			continue;
		}
		/* it appeared meanwhile: ours goes, cdir_archive() judges theirs */
		cdir_remove_temp(staged->temp);
		cdir_staged.files[i--] = cdir_staged.files[--cdir_staged.n];
	}

	if (nrenamed > 0)
		cdir_sync_dir(dir, nrenamed);
	for (int i = 0; i < cdir_staged.n; i++)
		cdir_staged.files[i].state = CDIR_STAGED_DURABLE;
}

/*
 * Was file archived into dir, stored with method, by the batch just staged?
 * Then *bytes and *stored get its sizes, and it is forgotten.  If the batch
 * failed after renaming it, that is an ERROR.
 */
static bool
cdir_staged_take(const char *file, const char *dir,
				 WalvaultCodecMethod method, uint64 *bytes, uint64 *stored)
{
	for (int i = 0; i < cdir_staged.n; i++)
	{
		CdirStaged staged = cdir_staged.files[i];

		if (strcmp(staged.file, file) != 0)
			continue;
		cdir_staged.files[i] = cdir_staged.files[--cdir_staged.n];
		if (staged.state == CDIR_STAGED_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg("could not make the name of the archive file for \"%s\" durable",
							file),
					 errdetail("The file was archived together with others, and an error after its rename, logged before this one, left its name possibly not durable."),
					 errhint("The server asks for the file again; that attempt fsyncs and compares the file found in the archive.")));
		*bytes = staged.bytes;
		*stored = staged.stored;
		return staged.state == CDIR_STAGED_DURABLE &&
			strcmp(cdir_staged.dir, dir) == 0 && cdir_staged.method == method;
	}
	return false;
}

/*
 * The WAL file at path is in the archive already as dest, stored with
 * method: success if dest holds the same content and is durable (returns
 * the size of the WAL file), an ERROR otherwise.
 */
static uint64
cdir_existing(const char *path, const char *dest, WalvaultCodecMethod method,
			  const char *dir)
{
	struct stat st;

	/*
	 * What an earlier attempt failed to make durable, we must; and then
	 * judge what is on disk: a failed writeback leaves pages that never
	 * reached the disk looking clean in the page cache, so they are dropped
	 * from it first.
	 */
	cdir_fsync(dest, false);
	cdir_fsync(dir, true);
	cdir_drop_cache(dest);

	if (!cdir_equal(path, dest, method))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_FILE),
				 errmsg("archive file \"%s\" already exists with different content",
						dest),
				 errdetail("The file in the archive is never overwritten; the WAL file stays in pg_wal."),
				 errhint("Check whether another cluster archives into the same directory.")));

	ereport(DEBUG1,
			(errmsg("archive file \"%s\" already exists with identical content",
					dest)));
	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	return (uint64) st.st_size;
}

/*
 * Give temp, whose content is durable already (cdir_dest_close()), the name
 * dest, and make that name durable, unless a file of that name exists: then
 * return false and leave both alone.  Where rename cannot refuse to
 * replace (RENAME_NOREPLACE is Linux's, and not every file system has it),
 * link() and unlink() do the same.
 */
static bool
cdir_publish(const char *temp, const char *dest, const char *dir)
{
	if (!cdir_rename_new(temp, dest))
		return false;
	cdir_temp_path[0] = '\0';

	cdir_sync_dir(dir, 1);
	return true;
}

/*
 * Rename temp to dest unless a file of that name exists (then return false
 * and leave both alone); the new name is not durable yet.
 */
static bool
cdir_rename_new(const char *temp, const char *dest)
{
	int			rc = -1;

	/* held here by a test, to create dest meanwhile (17+) */
	walvault_injection_point("walvault-before-publish");

#ifdef RENAME_NOREPLACE
	rc = renameat2(AT_FDCWD, temp, AT_FDCWD, dest, RENAME_NOREPLACE);
	if (rc != 0 && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
	{
		if (errno == EEXIST)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m",
						temp, dest)));
	}
#endif
	if (rc != 0)
	{
		if (link(temp, dest) != 0)
		{
			if (errno == EEXIST)
				return false;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not link file \"%s\" to \"%s\": %m",
							temp, dest)));
		}
		if (unlink(temp) != 0)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", temp)));
	}
	return true;
}

/*
 * Make the renames into dir done so far durable (nrenames of them are
 * ours): share an fsync of the directory with the processes that renamed
 * at about the same time (see the file header), or fsync it alone.
 * Returns once an fsync that began after our renames has succeeded; a
 * failure is an ERROR.
 */
static void
cdir_sync_dir(const char *dir, int nrenames)
{
	WalvaultDirSync *ds;
	uint64		ticket;
	bool		failed = false;
	bool		slept = false;
	int			my_errno = 0;	/* errno of an fsync that failed here */

	/* looked up now: the first lookup may take a lock (17+), see below */
	uint32		sync_event = walvault_wait_event(WALVAULT_WAIT_SYNC);

	if (walvault_shared == NULL || strlen(dir) >= sizeof(ds->dir))
	{
		cdir_fsync(dir, true);
		return;
	}
	ds = &walvault_shared->dir_sync;

	SpinLockAcquire(&ds->mutex);
	if (strcmp(ds->dir, dir) != 0)
	{
		if (ds->next_ticket != Max(ds->synced_upto, ds->failed_upto))
		{
			/* tickets for another directory are outstanding */
			SpinLockRelease(&ds->mutex);
			cdir_fsync(dir, true);
			return;
		}
		strlcpy(ds->dir, dir, sizeof(ds->dir));
	}
	ds->next_ticket += nrenames;
	ticket = ds->next_ticket;
	SpinLockRelease(&ds->mutex);

	for (;;)
	{
		bool		lead = false;
		uint64		first = 0;
		uint64		last = 0;
		int			rc;

		SpinLockAcquire(&ds->mutex);
		if (ds->synced_upto >= ticket || ds->failed_upto >= ticket)
		{
			/* a failed fsync covering us fails us, even if a later one did not */
			failed = (ds->failed_upto >= ticket);
			SpinLockRelease(&ds->mutex);
			break;
		}
		if (!ds->syncing)
			ds->syncing = lead = true;
		SpinLockRelease(&ds->mutex);

		if (!lead)
		{
			/* returns at once the first time, to look again before sleeping */
			(void) ConditionVariableTimedSleep(&ds->cv, CDIR_SYNC_RECHECK_MS,
											   sync_event);
			slept = true;
			continue;
		}

		/*
		 * We lead.  Until syncing is cleared below, nothing may raise an
		 * ERROR or process an interrupt: everyone else waits for us.
		 */
		if (cdir_test_dir() != NULL)
			cdir_test_hold(nrenames);
		SpinLockAcquire(&ds->mutex);
		first = Max(ds->synced_upto, ds->failed_upto) + 1;
		last = ds->next_ticket;
		SpinLockRelease(&ds->mutex);

		pgstat_report_wait_start(sync_event);
		rc = cdir_fsync_dir_now(dir);
		pgstat_report_wait_end();

		SpinLockAcquire(&ds->mutex);
		if (rc == 0)
			ds->synced_upto = Max(ds->synced_upto, last);
		else
			ds->failed_upto = Max(ds->failed_upto, last);
		ds->syncing = false;
		SpinLockRelease(&ds->mutex);
		ConditionVariableBroadcast(&ds->cv);

		if (rc != 0)
			my_errno = rc;
		if (cdir_test_dir() != NULL && rc == 0)
			cdir_test_covered(first, last);
		/* our own ticket is covered now: the next round says how */
	}
	ConditionVariableCancelSleep();

	/*
	 * Sleeping reset our latch, which may have been set for the archiver's
	 * own loop (a backend announcing a ready file): give it back, as
	 * archiver.c does after its own waits.  A worker loses nothing: it looks
	 * at the queue before it sleeps again.
	 */
	if (slept && MyBackendType == B_ARCHIVER)
		SetLatch(MyLatch);

	if (failed && my_errno != 0)
	{
		errno = my_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", dir)));
	}
	if (failed)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("could not fsync file \"%s\"", dir),
				 errdetail("The fsync of the directory that was to make the new file's name durable failed in another process, which logged the error.")));
}

/*
 * fsync the directory dir; returns 0 or an errno.  Called by the leader of a
 * group fsync, which must not raise an ERROR (see cdir_sync_dir()): hence
 * plain open() and close() rather than fd.c's, whose failures are ERRORs;
 * nothing can fail between them, so the descriptor cannot leak.  Errors
 * are judged as fsync_fname_ext() judges them for a directory: where a
 * directory cannot be opened or fsynced at all, there is nothing to do.
 */
static int
cdir_fsync_dir_now(const char *dir)
{
	int			fd;
	int			rc = 0;

	fd = open(dir, O_RDONLY | PG_BINARY | O_CLOEXEC);
	if (fd < 0)
		return (errno == EISDIR || errno == EACCES) ? 0 : errno;
	if (pg_fsync(fd) != 0 && errno != EBADF && errno != EINVAL)
		rc = errno;
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	return rc;
}

/* The test hook's directory (CDIR_TEST_HOLD_ENV), NULL without it. */
static const char *
cdir_test_dir(void)
{
	static bool looked = false;
	static const char *dir = NULL;

	if (!looked)
	{
		dir = getenv(CDIR_TEST_HOLD_ENV);
		if (dir != NULL && dir[0] == '\0')
			dir = NULL;
		looked = true;
	}
	return dir;
}

/*
 * Test hook (CDIR_TEST_HOLD_ENV): if the test armed it, hold this fsync
 * until the test lets it go.  No ERROR, no interrupt: we lead a group.
 */
static void
cdir_test_hold(int nrenames)
{
	char		hold[MAXPGPATH];
	char		held[MAXPGPATH];
	char		go[MAXPGPATH];

	snprintf(hold, sizeof(hold), "%s/hold", cdir_test_dir());
	snprintf(held, sizeof(held), "%s/held.%d", cdir_test_dir(), MyProcPid);
	snprintf(go, sizeof(go), "%s/go", cdir_test_dir());
	if (rename(hold, held) != 0)
	{
		bool		armed = false;

		/* DIR/hold.N: only a leader of N renames of its own or more */
		for (int n = 2; n <= nrenames && !armed; n++)
		{
			snprintf(hold, sizeof(hold), "%s/hold.%d", cdir_test_dir(), n);
			armed = (rename(hold, held) == 0);
		}
		if (!armed)
			return;				/* not armed, or another process took it */
	}
	while (access(go, F_OK) != 0 && PostmasterIsAlive())
		pg_usleep(10000L);
	(void) unlink(go);
}

/* Test hook (CDIR_TEST_HOLD_ENV): say which tickets an fsync covered. */
static void
cdir_test_covered(uint64 first, uint64 last)
{
	char		path[MAXPGPATH];
	char		line[64];
	int			fd;

	snprintf(path, sizeof(path), "%s/fsyncs", cdir_test_dir());
	snprintf(line, sizeof(line), UINT64_FORMAT " " UINT64_FORMAT "\n",
			 first, last);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, S_IRUSR | S_IWUSR);
	if (fd < 0)
		return;
	if (write(fd, line, strlen(line)) < 0)
	{
		/* the test will notice */
	}
	close(fd);
}

/*
 * fsync a file or directory; a failure is an ERROR, which fails this file
 * only.  (The server's fsync_fname() would PANIC the whole cluster unless
 * data_sync_retry is on: right for its own data files, wrong for a copy
 * that the next attempt judges again, see cdir_existing().)
 */
static void
cdir_fsync(const char *path, bool isdir)
{
	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_SYNC));
	(void) fsync_fname_ext(path, isdir, false, ERROR);
	pgstat_report_wait_end();
}

/* Drop the pages of path from the page cache, so that reads go to disk. */
static void
cdir_drop_cache(const char *path)
{
#ifdef USE_POSIX_FADVISE
	int			fd = cdir_open(path, O_RDONLY);

	(void) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	CloseTransientFile(fd);
#endif
}

/*
 * What tells our temporary files from those of other clusters and hosts:
 * "SYSID.HOST", the host name cut to the characters a file name can hold
 * safely.
 */
static const char *
cdir_temp_tag(void)
{
	static char tag[32 + WALVAULT_HOST_LEN];

	if (tag[0] == '\0')
	{
		char		host[WALVAULT_HOST_LEN + 1];

		if (gethostname(host, sizeof(host)) != 0)
			strlcpy(host, "unknown", sizeof(host));
		host[WALVAULT_HOST_LEN] = '\0';
		for (char *c = host; *c != '\0'; c++)
		{
			if (!isalnum((unsigned char) *c) && *c != '-')
				*c = '_';
		}
		snprintf(tag, sizeof(tag), UINT64_FORMAT ".%s",
				 GetSystemIdentifier(), host);
	}
	return tag;
}

/*
 * Create the temporary file that file is copied to in dir, and return it
 * open for writing; cdir_temp_path gets its name (and only once it is
 * ours: cdir_abort() removes what it names).
 *
 * The first name tried is .FILE.walvault.SYSID.HOST.PID.tmp.  Anything
 * already there (see the file header) makes O_EXCL fail, a link of either
 * kind included, and is none of ours to remove: it may be a file that an
 * earlier process with our pid left behind, which the coordinator removes
 * once we are gone, or something planted, which the DBA should see.  The
 * names tried then end in random digits, so that taking them all ahead of
 * us cannot keep a file from being archived.
 */
static int
cdir_create_temp(const char *dir, const char *file)
{
	char		temp[MAXPGPATH];

	for (int attempt = 0;; attempt++)
	{
		uint32		nonce[2];
		int			fd;

		if (attempt == 0)
			snprintf(temp, sizeof(temp), "%s/.%s.walvault.%s.%d.tmp",
					 dir, file, cdir_temp_tag(), MyProcPid);
		else
		{
			if (!pg_strong_random(nonce, sizeof(nonce)))
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not generate random name for a temporary file")));
			StaticAssertStmt(CDIR_NONCE_LEN == 2 * sizeof(nonce),
							 "the nonce is printed as 16 hex digits");
			snprintf(temp, sizeof(temp), "%s/.%s.walvault.%s.%d.%08x%08x.tmp",
					 dir, file, cdir_temp_tag(), MyProcPid, nonce[0], nonce[1]);
		}

		fd = OpenTransientFilePerm(temp,
								   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
								   PG_BINARY,
								   S_IRUSR | S_IWUSR);
		if (fd >= 0)
		{
			strlcpy(cdir_temp_path, temp, sizeof(cdir_temp_path));
			return fd;
		}
		/* ELOOP: a symbolic link, where O_EXCL would not say EEXIST */
		if ((errno != EEXIST && errno != ELOOP) ||
			attempt + 1 >= CDIR_TEMP_ATTEMPTS)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create file \"%s\": %m", temp)));
		ereport(LOG,
				(errcode(ERRCODE_DUPLICATE_FILE),
				 errmsg("temporary file \"%s\" already exists, trying another name",
						temp),
				 errdetail("This process did not create it: it is left alone and never written to."),
				 errhint("Unless it was left by a crash, check who else can write to the archive directory.")));
	}
}

/*
 * Remove the temporary file of a copy that did not finish.  Safe to call at
 * any time, including from exit callbacks.
 */
static void
cdir_abort(void)
{
	/* an error while waiting for a group fsync leaves us on its list */
	ConditionVariableCancelSleep();
	if (cdir_temp_path[0] != '\0')
	{
		cdir_remove_temp(cdir_temp_path);
		cdir_temp_path[0] = '\0';
	}

	/*
	 * A batch cut short: its temporary files go (their descriptors are
	 * closed by fd.c, or by exit), and files renamed but not known durable
	 * fail (see CdirStaged).
	 */
	for (int i = 0; i < cdir_staged.n; i++)
	{
		CdirStaged *staged = &cdir_staged.files[i];

		if (staged->state == CDIR_STAGED_RENAMED)
			staged->state = CDIR_STAGED_FAILED;
		else if (staged->state == CDIR_STAGED_COPIED)
		{
			cdir_remove_temp(staged->temp);
			cdir_staged.files[i--] = cdir_staged.files[--cdir_staged.n];
		}
	}
}

/* Remove a temporary file of ours; a failure is only logged. */
static void
cdir_remove_temp(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not remove temporary file \"%s\": %m", path)));
}

/*
 * Remove temporary files that processes of this cluster on this host which
 * no longer exist left in the archive directory (a worker killed in the middle of a copy).
 * Files of other clusters and hosts, and of processes that still run, are
 * left alone.
 */
static void
cdir_cleanup(void)
{
	const char *dir = walvault_archive_directory;
	DIR		   *d;
	struct dirent *de;
	char		ours[64 + WALVAULT_HOST_LEN];

	if (dir == NULL || dir[0] == '\0')
		return;
	d = AllocateDir(dir);
	if (d == NULL)
		return;					/* unusable directories are reported elsewhere */
	snprintf(ours, sizeof(ours), ".walvault.%s.", cdir_temp_tag());
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		size_t		len = strlen(de->d_name);
		const char *tag;
		char	   *end;
		long		pid;
		char		path[MAXPGPATH];

		CHECK_FOR_INTERRUPTS();
		/* our names: .<file>.walvault.<sysid>.<host>.<pid>.tmp */
		if (de->d_name[0] != '.' || len < 5 ||
			strcmp(de->d_name + len - 4, ".tmp") != 0 ||
			(tag = strstr(de->d_name, ours)) == NULL)
			continue;
		pid = strtol(tag + strlen(ours), &end, 10);
		/* .<pid>.<nonce>.tmp: a name taken because the first was not free */
		if (*end == '.' && de->d_name + len - 4 - end == 1 + CDIR_NONCE_LEN &&
			strspn(end + 1, "0123456789abcdef") == CDIR_NONCE_LEN)
			end += 1 + CDIR_NONCE_LEN;
		if (end != de->d_name + len - 4 || pid <= 0 ||
			kill((pid_t) pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0)
			ereport(LOG,
					(errmsg("removed stale temporary file \"%s\"", path)));
	}
	FreeDir(d);
}

/* Say at elevel whether the archive directory can be used now. */
static void
cdir_check(int elevel)
{
	if (walvault_directory_usable(walvault_archive_directory, elevel))
		(void) cdir_outside_data_directory(walvault_archive_directory, elevel);
}

/* Are a and b the same file (directory), whatever the paths that led there? */
#define CDIR_SAME_FILE(a, b) \
	((a).st_dev == (b).st_dev && (a).st_ino == (b).st_ino)

/*
 * Is dir outside the data directory and pg_wal?  Says at elevel why not.
 *
 * pg_wal itself would archive nothing: every file would be found there "in
 * the archive already" as itself, reported archived, and removed by the
 * server.  Anywhere else in the data directory, or in pg_wal where it is a
 * link elsewhere (initdb --waldir), the archive would be copied by base
 * backups, and lost with the cluster it is meant to outlive.
 *
 * Paths are not compared, directories are (device and inode), so that no
 * symbolic link or bind mount leads there unseen: dir itself with pg_wal,
 * then dir and every directory above it on its real path with the data
 * directory and pg_wal.  A dir that cannot be resolved now (missing) is not
 * judged: whoever uses it reports what fails.
 */
static bool
cdir_outside_data_directory(const char *dir, int elevel)
{
	struct stat dir_st;
	struct stat data_st;
	struct stat wal_st;
	char	   *resolved;
	char	   *real;
	char	   *above;
	bool		in_data = false;
	bool		in_wal = false;

	if (stat(dir, &dir_st) != 0)
		return true;
	/* judged before, and still the same directory: see cdir_outside_known */
	if (cdir_outside_known.valid && strcmp(cdir_outside_known.dir, dir) == 0 &&
		CDIR_SAME_FILE(cdir_outside_known.st, dir_st))
		return true;
	if (stat(DataDir, &data_st) != 0 || stat(XLOGDIR, &wal_st) != 0)
		return true;
	if (CDIR_SAME_FILE(dir_st, wal_st))
	{
		ereport(elevel,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_walvault.archive_directory \"%s\" is the server's WAL directory",
						dir),
				 errdetail("Every WAL file would be found there as if archived already, and then removed by the server; no file is archived while it is set, and WAL files stay in pg_wal."),
				 errhint("Set pg_walvault.archive_directory to a directory outside the data directory, preferably on another disk, and reload the server.")));
		return false;
	}

	resolved = realpath(dir, NULL);
	if (resolved == NULL)
		return true;
	/* in our memory context, which an ERROR below cleans up */
	real = pstrdup(resolved);
	free(resolved);
	above = pstrdup(real);
	for (;;)
	{
		struct stat st;
		char	   *slash;

		if (stat(above, &st) == 0)
		{
			in_wal = CDIR_SAME_FILE(st, wal_st);
			in_data = CDIR_SAME_FILE(st, data_st);
			if (in_wal || in_data)
				break;
		}
		slash = strrchr(above, '/');
		if (slash == NULL || slash == above)
			break;				/* the root cannot be the data directory */
		*slash = '\0';
	}
	pfree(above);

	if (in_wal)
		ereport(elevel,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_walvault.archive_directory \"%s\" is inside the server's WAL directory",
						dir),
				 errdetail("Its real path is \"%s\". An archive there would be copied by base backups and lost with the cluster; no file is archived while it is set, and WAL files stay in pg_wal.",
						   real),
				 errhint("Set pg_walvault.archive_directory to a directory outside the data directory, preferably on another disk, and reload the server.")));
	else if (in_data)
		ereport(elevel,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_walvault.archive_directory \"%s\" is inside the data directory",
						dir),
				 errdetail("Its real path is \"%s\". An archive there would be copied by base backups and lost with the cluster; no file is archived while it is set, and WAL files stay in pg_wal.",
						   real),
				 errhint("Set pg_walvault.archive_directory to a directory outside the data directory, preferably on another disk, and reload the server.")));
	pfree(real);
	if (!in_wal && !in_data && strlen(dir) < sizeof(cdir_outside_known.dir))
	{
		strlcpy(cdir_outside_known.dir, dir, sizeof(cdir_outside_known.dir));
		cdir_outside_known.st = dir_st;
		cdir_outside_known.valid = true;
	}
	return !in_wal && !in_data;
}

static void
cdir_ensure_buffers(void)
{
	if (cdir_buf == NULL)
		cdir_buf = MemoryContextAlloc(TopMemoryContext, CDIR_BUFSIZE);
}

/*
 * Read up to len bytes (fewer only at end of file), or write all len bytes,
 * retrying short transfers and EINTR; returns the bytes transferred.
 */
static size_t
cdir_transfer(int fd, const char *path, char *buf, size_t len, bool writing,
			  uint32 wait_event)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		rc;

		pgstat_report_wait_start(wait_event);
		rc = writing ? write(fd, buf + done, len - done) :
			read(fd, buf + done, len - done);
		pgstat_report_wait_end();
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0 && writing)
		{
			/* a write that makes no progress: assume the disk is full */
			errno = ENOSPC;
			rc = -1;
		}
		if (rc < 0)
		{
			if (writing)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not write file \"%s\": %m", path)));
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", path)));
		}
		if (rc == 0)
			break;				/* end of file */
		done += rc;
	}
	return done;
}

/*
 * Copy src to dst, open as dstfd (which is closed).  The copy is shaped for archiving many large files in
 * parallel on the same disk: the whole source is announced to the kernel
 * (read-ahead in large requests), the data is copied inside the kernel when
 * it can (copy_file_range: no trip through our buffer), and writeback of the
 * destination is started every CDIR_FLUSH_BYTES, so that the final fsync
 * (cdir_dest_close()) has little left to do and the disk never idles while we
 * copy.
 */
static uint64
cdir_copy(const char *src, int dstfd, const char *dst, bool keep_open)
{
	int			srcfd;
	CdirDest	dest = {dstfd, dst, 0, 0,
	walvault_wait_event(WALVAULT_WAIT_COPY)};
	bool		in_kernel = true;

	srcfd = cdir_open(src, O_RDONLY);

	for (;;)
	{
		ssize_t		n = -1;

		CHECK_FOR_INTERRUPTS();
#ifdef __linux__
		if (in_kernel)
		{
			pgstat_report_wait_start(dest.wait_event);
			n = copy_file_range(srcfd, NULL, dest.fd, NULL, CDIR_BUFSIZE, 0);
			pgstat_report_wait_end();
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
						  errno == EINVAL || errno == EOPNOTSUPP))
			{
				/* not here (another file system, say): use our buffer */
				ereport(DEBUG1,
						(errmsg_internal("copy_file_range from \"%s\" to \"%s\" is not possible (%m), copying through a buffer",
										 src, dst)));
				in_kernel = false;
			}
			else if (n < 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not copy file \"%s\" to \"%s\": %m",
								src, dst)));
		}
#else
		in_kernel = false;
#endif
		if (!in_kernel)
			n = cdir_copy_chunk(srcfd, src, dest.fd, dst);
		if (n == 0)
			break;
		cdir_dest_written(&dest, n);
	}

	cdir_dest_finish(&dest, keep_open);
	CloseTransientFile(srcfd);
	return dest.written;
}

/*
 * Compress src into dst, open as dstfd (which is closed).  Read-ahead and
 * early writeback as in cdir_copy(); the data goes through our buffer and
 * the codec.  Returns the bytes read; *stored gets the bytes written.
 */
static uint64
cdir_compress(const char *src, int dstfd, const char *dst,
			  const WalvaultCompression *compression, uint64 *stored,
			  bool keep_open)
{
	WalvaultCodec *codec;
	int			srcfd;
	struct stat st;
	CdirDest	dest = {dstfd, dst, 0, 0,
	walvault_wait_event(WALVAULT_WAIT_COMPRESS)};
	uint64		total = 0;
	bool		finish = false;
	const char *err;

	srcfd = cdir_open(src, O_RDONLY);
	if (fstat(srcfd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", src)));
	/* a WAL file the server hands us no longer changes: its size is exact */
	codec = cdir_codec(compression->method, compression->level,
					   (size_t) st.st_size);

	while (!finish)
	{
		size_t		n;
		bool		fed;

		CHECK_FOR_INTERRUPTS();
		n = cdir_transfer(srcfd, src, cdir_buf, CDIR_BUFSIZE, false,
						  dest.wait_event);
		finish = (n < CDIR_BUFSIZE);
		total += n;
		pgstat_report_wait_start(dest.wait_event);
		fed = walvault_codec_feed(codec, cdir_buf, n, finish,
								  cdir_write_sink, &dest, &err);
		pgstat_report_wait_end();
		if (!fed)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compress file \"%s\" with %s: %s",
							src, walvault_codec_name(compression->method),
							err)));
	}

	cdir_dest_finish(&dest, keep_open);
	CloseTransientFile(srcfd);
	*stored = dest.written;
	return total;
}

/*
 * The compressor for method, made on first use and kept for the life of
 * the process, started on a new stream (level and size: see
 * walvault_codec_start()).
 */
static WalvaultCodec *
cdir_codec(WalvaultCodecMethod method, int level, size_t size)
{
	WalvaultCodec **codec = &cdir_compressors[method];
	const char *err;

	if (*codec == NULL)
	{
		*codec = walvault_codec_create(method, true);
		if (*codec == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	if (!walvault_codec_start(*codec, level, size, &err))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not start %s compression: %s",
						walvault_codec_name(method), err)));
	return *codec;
}

/* Codec sink: append to the destination file. */
static bool
cdir_write_sink(void *arg, const char *data, size_t len)
{
	CdirDest   *dest = (CdirDest *) arg;

	(void) cdir_transfer(dest->fd, dest->path, (char *) data, len, true,
						 dest->wait_event);
	/* the codec goes on under the same event, which the write ended */
	pgstat_report_wait_start(dest->wait_event);
	cdir_dest_written(dest, len);
	return true;
}

/* Count bytes written to dest; start their writeback now and then. */
static void
cdir_dest_written(CdirDest *dest, size_t len)
{
	dest->written += len;
	if (dest->written - dest->flushed >= CDIR_FLUSH_BYTES)
	{
		pg_flush_data(dest->fd, dest->flushed, dest->written - dest->flushed);
		dest->flushed = dest->written;
	}
}

/*
 * The copy into dest is complete: fsync and close it (cdir_dest_close()),
 * or, for cdir_stage(), which fsyncs it later, keep it open and start the
 * writeback of what is left.
 */
static void
cdir_dest_finish(CdirDest *dest, bool keep_open)
{
	if (!keep_open)
		cdir_dest_close(dest);
	else if (dest->written > dest->flushed)
	{
		pg_flush_data(dest->fd, dest->flushed, dest->written - dest->flushed);
		dest->flushed = dest->written;
	}
}

/*
 * fsync and close the destination: its content is durable before it gets
 * its name (cdir_publish()).  Through the descriptor we wrote with, rather
 * than by name, which would open the file once more per file archived.
 */
static void
cdir_dest_close(CdirDest *dest)
{
	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_SYNC));
	if (pg_fsync(dest->fd) != 0)
	{
		int			save_errno = errno;

		pgstat_report_wait_end();
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", dest->path)));
	}
	pgstat_report_wait_end();
	if (CloseTransientFile(dest->fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", dest->path)));
}

/*
 * Open path for copying: a new file is private to the server's user, and a
 * source is announced for sequential read-ahead of the whole file.
 */
static int
cdir_open(const char *path, int flags)
{
	int			fd;

	fd = OpenTransientFilePerm(path, flags | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
	{
		if (flags & O_CREAT)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create file \"%s\": %m", path)));
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	}
#ifdef USE_POSIX_FADVISE
	if ((flags & O_ACCMODE) == O_RDONLY)
	{
		(void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		(void) posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	}
#endif
	return fd;
}

/* Copy one buffer's worth through user space; returns bytes copied. */
static ssize_t
cdir_copy_chunk(int srcfd, const char *src, int dstfd, const char *dst)
{
	size_t		n = cdir_transfer(srcfd, src, cdir_buf, CDIR_BUFSIZE, false,
								  walvault_wait_event(WALVAULT_WAIT_COPY));

	(void) cdir_transfer(dstfd, dst, cdir_buf, n, true,
						 walvault_wait_event(WALVAULT_WAIT_COPY));
	return (ssize_t) n;
}

/*
 * Does the archive file hold exactly the content of src, stored with
 * method?  (compare.c)
 */
static bool
cdir_equal(const char *src, const char *archived, WalvaultCodecMethod method)
{
	WalvaultCompare *cmp = walvault_compare_begin(src, archived, method);
	int			fd = cdir_open(archived, O_RDONLY);

	for (;;)
	{
		size_t		n;

		CHECK_FOR_INTERRUPTS();
		n = cdir_transfer(fd, archived, cdir_buf, CDIR_BUFSIZE, false,
						  walvault_wait_event(WALVAULT_WAIT_COMPARE));
		if (n == 0 || !walvault_compare_feed(cmp, cdir_buf, n))
			break;
	}
	CloseTransientFile(fd);
	return walvault_compare_end(cmp);
}

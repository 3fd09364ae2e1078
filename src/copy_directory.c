/*-------------------------------------------------------------------------
 *
 * copy_directory.c
 *	  Durable copy of one WAL file into pg_walvault.archive_directory.
 *
 * A file counts as archived only once it is durable: it is written to a
 * temporary file in the archive directory (mode 0600, a name private to this
 * process), then durable_rename() fsyncs it, renames it into place and
 * fsyncs the directory.  A file that is already in the archive is never
 * overwritten: the server asks again for a file that was archived just
 * before a crash (the .done was not yet written), so identical content is
 * success, and different content is an error that leaves both files alone.
 *
 * Errors are raised with ereport(ERROR); the caller (archive_file.c) traps
 * them.  A temporary file left by an error or by process exit is removed by
 * walvault_copy_abort().
 *
 * src/copy_directory.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "pg_walvault.h"

#define CDIR_BUFSIZE	(1024 * 1024)
/* start writeback of the destination every this many bytes */
#define CDIR_FLUSH_BYTES	(2 * 1024 * 1024)

/* Temporary file that exists while a copy is under way, "" otherwise. */
static char cdir_temp_path[MAXPGPATH] = "";
/* I/O buffers, allocated once per process. */
static char *cdir_buf = NULL;
static char *cdir_buf2 = NULL;

static void cdir_ensure_buffers(void);
static bool cdir_files_equal(const char *path1, const char *path2);
static uint64 cdir_copy(const char *src, const char *dst);
static size_t cdir_transfer(int fd, const char *path, char *buf, size_t len,
							 bool writing);
static ssize_t cdir_copy_chunk(int srcfd, const char *src, int dstfd,
							   const char *dst);

/*
 * Copy the WAL file at path (relative to the data directory) into dir under
 * the name file.  Returns the number of bytes archived.
 */
uint64
walvault_copy_to_directory(const char *file, const char *path, const char *dir)
{
	char		dest[MAXPGPATH];
	struct stat st;
	uint64		bytes;

	cdir_ensure_buffers();
	snprintf(dest, sizeof(dest), "%s/%s", dir, file);

	if (stat(dest, &st) == 0)
	{
		if (cdir_files_equal(path, dest))
		{
			ereport(DEBUG1,
					(errmsg("archive file \"%s\" already exists with identical content",
							dest)));
			return (uint64) st.st_size;
		}
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_FILE),
				 errmsg("archive file \"%s\" already exists with different content",
						dest),
				 errdetail("The file in the archive is never overwritten; the WAL file stays in pg_wal."),
				 errhint("Check whether another cluster archives into the same directory.")));
	}
	else if (errno != ENOENT)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", dest)));

	snprintf(cdir_temp_path, sizeof(cdir_temp_path), "%s/.%s.walvault.%d.tmp",
			 dir, file, MyProcPid);
	bytes = cdir_copy(path, cdir_temp_path);

	/* fsyncs the file, renames it, fsyncs the directory */
	(void) durable_rename(cdir_temp_path, dest, ERROR);
	cdir_temp_path[0] = '\0';

	return bytes;
}

/*
 * Remove the temporary file of a copy that did not finish.  Safe to call at
 * any time, including from exit callbacks.
 */
void
walvault_copy_abort(void)
{
	if (cdir_temp_path[0] != '\0')
	{
		if (unlink(cdir_temp_path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove temporary file \"%s\": %m",
							cdir_temp_path)));
		cdir_temp_path[0] = '\0';
	}
}

/*
 * Remove temporary files that processes which no longer exist left in dir
 * (a worker killed in the middle of a copy).  The name carries the pid of
 * its writer; a file whose writer still runs is left alone.
 */
void
walvault_remove_stale_temp_files(const char *dir)
{
	DIR		   *d;
	struct dirent *de;

	if (dir == NULL || dir[0] == '\0')
		return;
	d = AllocateDir(dir);
	if (d == NULL)
		return;					/* unusable directories are reported elsewhere */
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		size_t		len = strlen(de->d_name);
		const char *tag;
		char	   *end;
		long		pid;
		char		path[MAXPGPATH];

		/* our names: .<file>.walvault.<pid>.tmp */
		if (de->d_name[0] != '.' || len < 5 ||
			strcmp(de->d_name + len - 4, ".tmp") != 0 ||
			(tag = strstr(de->d_name, ".walvault.")) == NULL)
			continue;
		pid = strtol(tag + strlen(".walvault."), &end, 10);
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

static void
cdir_ensure_buffers(void)
{
	if (cdir_buf == NULL)
		cdir_buf = MemoryContextAlloc(TopMemoryContext, CDIR_BUFSIZE);
	if (cdir_buf2 == NULL)
		cdir_buf2 = MemoryContextAlloc(TopMemoryContext, CDIR_BUFSIZE);
}

/*
 * Read up to len bytes (fewer only at end of file), or write all len bytes,
 * retrying short transfers and EINTR; returns the bytes transferred.
 */
static size_t
cdir_transfer(int fd, const char *path, char *buf, size_t len, bool writing)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		rc;

		pgstat_report_wait_start(writing ? WAIT_EVENT_COPY_FILE_WRITE :
								 WAIT_EVENT_COPY_FILE_READ);
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
 * Copy src to dst.  The copy is shaped for archiving many large files in
 * parallel on the same disk: the whole source is announced to the kernel
 * (read-ahead in large requests), the data is copied inside the kernel when
 * it can (copy_file_range: no trip through our buffer), and writeback of the
 * destination is started every CDIR_FLUSH_BYTES, so that the final fsync in
 * durable_rename() has little left to do and the disk never idles while we
 * copy.
 */
static uint64
cdir_copy(const char *src, const char *dst)
{
	int			srcfd;
	int			dstfd;
	uint64		total = 0;
	uint64		flushed = 0;
	bool		in_kernel = true;

	srcfd = OpenTransientFile(src, O_RDONLY | PG_BINARY);
	if (srcfd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", src)));

	dstfd = OpenTransientFilePerm(dst, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY,
								  S_IRUSR | S_IWUSR);
	if (dstfd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", dst)));

#ifdef USE_POSIX_FADVISE
	(void) posix_fadvise(srcfd, 0, 0, POSIX_FADV_SEQUENTIAL);
	(void) posix_fadvise(srcfd, 0, 0, POSIX_FADV_WILLNEED);
#endif

	for (;;)
	{
		ssize_t		n = -1;

#ifdef __linux__
		if (in_kernel)
		{
			pgstat_report_wait_start(WAIT_EVENT_COPY_FILE_WRITE);
			n = copy_file_range(srcfd, NULL, dstfd, NULL, CDIR_BUFSIZE, 0);
			pgstat_report_wait_end();
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
						  errno == EINVAL || errno == EOPNOTSUPP))
				in_kernel = false;	/* not here: use our buffer */
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
			n = cdir_copy_chunk(srcfd, src, dstfd, dst);
		if (n == 0)
			break;
		total += n;

		if (total - flushed >= CDIR_FLUSH_BYTES)
		{
			pg_flush_data(dstfd, flushed, total - flushed);
			flushed = total;
		}
	}

	if (CloseTransientFile(dstfd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", dst)));
	if (CloseTransientFile(srcfd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", src)));
	return total;
}

/* Copy one buffer's worth through user space; returns bytes copied. */
static ssize_t
cdir_copy_chunk(int srcfd, const char *src, int dstfd, const char *dst)
{
	size_t		n = cdir_transfer(srcfd, src, cdir_buf, CDIR_BUFSIZE, false);

	(void) cdir_transfer(dstfd, dst, cdir_buf, n, true);
	return (ssize_t) n;
}

static bool
cdir_files_equal(const char *path1, const char *path2)
{
	int			fd1;
	int			fd2;
	struct stat st1;
	struct stat st2;
	bool		equal = true;

	fd1 = OpenTransientFile(path1, O_RDONLY | PG_BINARY);
	if (fd1 < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path1)));
	fd2 = OpenTransientFile(path2, O_RDONLY | PG_BINARY);
	if (fd2 < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path2)));

	if (fstat(fd1, &st1) != 0 || fstat(fd2, &st2) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path2)));

	if (st1.st_size != st2.st_size)
		equal = false;

	while (equal)
	{
		size_t		n1 = cdir_transfer(fd1, path1, cdir_buf, CDIR_BUFSIZE, false);
		size_t		n2 = cdir_transfer(fd2, path2, cdir_buf2, CDIR_BUFSIZE, false);

		if (n1 != n2 || memcmp(cdir_buf, cdir_buf2, n1) != 0)
			equal = false;
		if (n1 == 0 || n2 == 0)
			break;
	}

	CloseTransientFile(fd1);
	CloseTransientFile(fd2);
	return equal;
}

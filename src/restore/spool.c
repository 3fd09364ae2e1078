/*-------------------------------------------------------------------------
 *
 * spool.c
 *	  The prefetch spool: where it is, who owns it, what its names mean.
 *
 * The spool is the directory pg_wal/pg_walvault_spool of the data directory
 * being recovered (a restore_command runs in the data directory).  Being
 * inside pg_wal puts it on the file system of the server's destination
 * (pg_wal/RECOVERYXLOG), so that serving a prefetched segment is a rename,
 * and outside what base backups copy.  The server ignores it: it only
 * looks at names of WAL files in pg_wal.
 *
 *	prefetcher.lock		held (a POSIX record lock) by the one prefetcher
 *						of the data directory for its whole life; holds its
 *						pid, for people and tests
 *	prefetcher.sock		where it listens
 *	<segment name>		a prefetched segment, complete, checked and fsynced
 *	<name>.<pid>.<nonce>.pg_walvault_restore.tmp
 *						being written by process pid
 *
 * A file in the spool is never served because it is there: only the
 * prefetcher that made it, which remembers it in memory, hands it out.  So
 * whatever a killed prefetcher leaves (half-written temporary files,
 * complete segments, a dead socket) is inert, and the next prefetcher, once
 * it holds the lock, empties the spool before anything else.  When no
 * prefetcher comes after (the prefetcher was killed, then recovery ended),
 * the next restore that starts none, with or without -j, removes such a
 * spool: one whose lock nobody holds (spool_remove_orphan()).  Nothing of
 * ours runs after recovery ended, though: until the next restore in that
 * data directory, the spool stays, at most --spool-size bytes.
 *
 * The lock is a POSIX record lock rather than flock(): it is not inherited
 * by the worker processes, so a worker that outlives a killed prefetcher by
 * a moment never keeps a new one from starting.  The lock file is removed
 * by its holder when the spool is given up; whoever locks it checks that
 * the file it locked is still the one under the name, and retries if not,
 * so that two processes never both believe they hold it.
 *
 * src/restore/spool.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "restore.h"

/*
 * The pid of the postmaster of the data directory (the first line of
 * postmaster.pid), or 0 when there is none.
 */
long
wv_read_postmaster_pid(void)
{
	FILE	   *f = fopen("postmaster.pid", "r");
	long		pid = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 0)
		pid = 0;
	fclose(f);
	return pid;
}

/*
 * Is the working directory the data directory of a running server in
 * archive recovery?  That is the only place prefetching makes sense: the
 * server asks for segment after segment, and when recovery ends (the signal
 * files are removed) or the server goes away, the prefetcher must too.
 */
bool
wv_in_archive_recovery(long *postmaster_pid)
{
	struct stat st;

	*postmaster_pid = wv_read_postmaster_pid();
	if (*postmaster_pid == 0)
		return false;
	/* a postmaster killed with SIGKILL leaves its pid file behind */
	if (kill((pid_t) *postmaster_pid, 0) != 0 && errno == ESRCH)
		return false;
	if (stat("PG_VERSION", &st) != 0)
		return false;
	return stat("recovery.signal", &st) == 0 ||
		stat("standby.signal", &st) == 0;
}

/*
 * Take the spool: create it if needed and lock it.  Returns the lock's
 * descriptor, or -1 when another process holds it (or the spool cannot be
 * made: the caller then does without prefetching).
 */
int
spool_lock(void)
{
	for (int attempt = 0; attempt < 10; attempt++)
	{
		struct flock fl;
		struct stat held;
		struct stat named;
		char		pid[32];
		int			fd;

		if (mkdir(WV_SPOOL_DIR, 0700) != 0 && errno != EEXIST)
			return -1;
		fd = open(WV_SPOOL_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
				  0600);
		if (fd < 0)
		{
			/* the spool was being removed under us: make it again */
			if (errno == ENOENT)
				continue;
			return -1;
		}

		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) != 0)
		{
			close(fd);
			return -1;
		}

		/* the holder before us may have removed the file it held */
		if (fstat(fd, &held) != 0 || stat(WV_SPOOL_LOCK, &named) != 0 ||
			held.st_dev != named.st_dev || held.st_ino != named.st_ino)
		{
			close(fd);
			continue;
		}

		snprintf(pid, sizeof(pid), "%ld\n", (long) getpid());
		if (ftruncate(fd, 0) != 0 ||
			pwrite(fd, pid, strlen(pid), 0) != (ssize_t) strlen(pid))
		{
			/* only informative */
		}
		return fd;
	}
	return -1;
}

/*
 * Give the spool up: remove the lock file and the directory (which the
 * caller emptied), then release the lock.
 */
void
spool_unlock_remove(int lock_fd)
{
	(void) unlink(WV_SPOOL_LOCK);
	(void) rmdir(WV_SPOOL_DIR);
	close(lock_fd);
}

/*
 * Remove the spool if it is there and no prefetcher holds it: one killed
 * left it.  A prefetcher that starts meanwhile finds it locked and gives
 * up, which only costs speed.
 */
void
spool_remove_orphan(void)
{
	struct stat st;
	struct dirent *de;
	DIR		   *d;
	int			lock_fd;

	if (lstat(WV_SPOOL_DIR, &st) != 0 || !S_ISDIR(st.st_mode))
		return;
	lock_fd = spool_lock();
	if (lock_fd < 0)
		return;
	d = opendir(WV_SPOOL_DIR);
	if (d != NULL)
	{
		while ((de = readdir(d)) != NULL)
		{
			char		path[WV_MAXPATH];

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
				strcmp(de->d_name, "prefetcher.lock") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", WV_SPOOL_DIR, de->d_name);
			(void) unlink(path);
		}
		closedir(d);
	}
	wv_verbose("removed the prefetch spool \"%s\" that no prefetcher held",
			   WV_SPOOL_DIR);
	spool_unlock_remove(lock_fd);
}

/*
 * Is name a temporary file of fetch.c ("<name>.<pid>.<nonce>" plus the
 * suffix)?  Then *pid is the process writing it.
 */
bool
spool_temp_owner(const char *name, long *pid)
{
	size_t		len = strlen(name);
	size_t		slen = strlen(WV_TEMP_SUFFIX);
	char		buf[WV_MAXPATH];
	char	   *dot;
	char	   *end;

	if (len <= slen || len >= sizeof(buf) ||
		strcmp(name + len - slen, WV_TEMP_SUFFIX) != 0)
		return false;
	memcpy(buf, name, len - slen);
	buf[len - slen] = '\0';
	/* drop the nonce, then read the pid */
	dot = strrchr(buf, '.');
	if (dot == NULL)
		return false;
	*dot = '\0';
	dot = strrchr(buf, '.');
	if (dot == NULL)
		return false;
	*pid = strtol(dot + 1, &end, 10);
	return *end == '\0' && *pid > 0;
}

/*
 * The timeline and segment number of a segment file name, for segments of
 * seg_size bytes.  False if no segment of that size has this name.
 */
bool
spool_segment_parse(const char *name, uint32_t seg_size, uint32_t *tli,
					uint64_t *segno)
{
	uint64_t	segs_per_id = UINT64_C(0x100000000) / seg_size;
	unsigned int t;
	unsigned int log;
	unsigned int seg;

	if (walvault_classify_name(name) != WALVAULT_FILE_SEGMENT ||
		sscanf(name, "%08X%08X%08X", &t, &log, &seg) != 3 ||
		seg >= segs_per_id)
		return false;
	*tli = t;
	*segno = (uint64_t) log * segs_per_id + seg;
	return true;
}

/* The name of segment segno of timeline tli (25 bytes with the NUL). */
void
spool_segment_name(char *out, uint32_t tli, uint64_t segno,
				   uint32_t seg_size)
{
	uint64_t	segs_per_id = UINT64_C(0x100000000) / seg_size;

	snprintf(out, WALVAULT_MAX_NAME_LEN + 1, "%08X%08X%08X",
			 (unsigned int) tli, (unsigned int) (segno / segs_per_id),
			 (unsigned int) (segno % segs_per_id));
}

/*-------------------------------------------------------------------------
 *
 * prefetch_client.c
 *	  Restore a segment with -j: ask the prefetcher, start one if needed.
 *
 * A restore command with -j asks the data directory's prefetcher
 * (prefetcher.c) for its segment.  If the segment is ready in the spool, it
 * is renamed to the destination and its directory fsynced: the file was
 * fsynced by the worker that wrote it.  Otherwise the prefetcher says so and
 * this process fetches the segment itself, exactly as without -j, so that
 * the exit status (restored, not in the archive, or an error that stops
 * recovery) is always the one a serial restore would give; it then tells
 * the prefetcher how it went.
 *
 * When no prefetcher answers, this process starts one (a double fork, the
 * grandchild in a session of its own, so that it is neither our child nor in
 * the process group the postmaster signals) and waits until it listens, or
 * gives up because another one holds the spool.  Any failure to reach the
 * prefetcher, or losing it mid-request, falls back to fetching directly:
 * prefetching only ever changes speed, never the outcome.
 *
 * Only segments are prefetched, and only for a running server in archive
 * recovery (postmaster.pid and recovery.signal or standby.signal in the
 * working directory, which for a restore_command is the data directory).
 * History and backup history files, and runs outside a server, such as
 * pg_rewind's, are fetched directly.
 *
 * src/restore/prefetch_client.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "restore.h"

static int	client_connect(void);
static void client_start_prefetcher(const RestoreOptions *opts,
									long postmaster_pid);
static bool client_read_line(int fd, char *buf, size_t size);
static int	client_fetch_self(const RestoreOptions *opts, int fd,
							  const char *reason);
static int	client_fetch_direct(const RestoreOptions *opts);

static int
client_fetch_direct(const RestoreOptions *opts)
{
	return wv_fetch(wv_open_source(opts), opts->file_name, opts->kind,
					opts->dest, 0, NULL);
}

/* Connect to the prefetcher's socket; -1 if nobody listens there. */
static int
client_connect(void)
{
	struct sockaddr_un addr;
	int			fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", WV_SPOOL_SOCKET);
	if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0)
	{
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Start a prefetcher and wait until it listens (or has given up).
 */
static void
client_start_prefetcher(const RestoreOptions *opts, long postmaster_pid)
{
	int			pipefd[2];
	pid_t		pid;
	char		c;

	if (pipe(pipefd) != 0)
		return;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
	{
		close(pipefd[0]);
		close(pipefd[1]);
		return;
	}
	if (pid == 0)
	{
		close(pipefd[0]);
		if (setsid() < 0)
			_exit(0);
		pid = fork();
		if (pid != 0)
			_exit(0);
		prefetcher_main(opts, postmaster_pid, pipefd[1]);
	}

	close(pipefd[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	/* one byte once it listens; end of file if it gave up or died */
	while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
		;
	close(pipefd[0]);
}

/* Read one line (without its newline); false at end of file or error. */
static bool
client_read_line(int fd, char *buf, size_t size)
{
	size_t		len = 0;

	while (len + 1 < size)
	{
		ssize_t		n = read(fd, buf + len, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		if (buf[len] == '\n')
		{
			buf[len] = '\0';
			return true;
		}
		len++;
	}
	return false;
}

/*
 * Fetch the segment ourselves, then tell the prefetcher how it went.  An
 * error ends the process, which closes the connection: the prefetcher
 * learns nothing from it, which is fine.
 */
static int
client_fetch_self(const RestoreOptions *opts, int fd, const char *reason)
{
	uint64_t	bytes = 0;
	int			rc;
	char		line[64];

	wv_verbose("fetching \"%s\" directly: %s", opts->file_name, reason);
	rc = wv_fetch(wv_open_source(opts), opts->file_name, opts->kind,
				  opts->dest, 0, &bytes);
	if (fd >= 0)
	{
		snprintf(line, sizeof(line), "DONE %d %llu\n", rc,
				 (unsigned long long) bytes);
		if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
		{
			/* the prefetcher is gone: nothing to tell */
		}
		close(fd);
	}
	return rc;
}

int
prefetch_restore(const RestoreOptions *opts)
{
	long		postmaster_pid;
	char		line[512];
	char		spool_path[WV_MAXPATH];
	char		key[32];
	int			fd;

	if (opts->kind != WALVAULT_FILE_SEGMENT)
		return client_fetch_direct(opts);
	if (!wv_in_archive_recovery(&postmaster_pid))
	{
		wv_verbose("not run by a server in archive recovery: no prefetching");
		spool_remove_orphan();
		return client_fetch_direct(opts);
	}

	fd = client_connect();
	if (fd < 0)
	{
		client_start_prefetcher(opts, postmaster_pid);
		fd = client_connect();
	}
	if (fd < 0)
		return client_fetch_self(opts, -1, "no prefetcher could be reached");

	wv_archive_key(opts, key, sizeof(key));
	snprintf(line, sizeof(line), "GET %s %ld %s\n", opts->file_name,
			 postmaster_pid, key);
	/* MSG_NOSIGNAL: a prefetcher that just went away must not kill us */
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t) strlen(line))
	{
		close(fd);
		return client_fetch_self(opts, -1, "the prefetcher did not take the request");
	}

	for (;;)
	{
		if (!client_read_line(fd, line, sizeof(line)))
		{
			close(fd);
			return client_fetch_self(opts, -1, "the prefetcher went away");
		}
		if (strncmp(line, "NOTE ", 5) == 0)
			wv_verbose("prefetcher: %s", line + 5);
		else if (strncmp(line, "FETCH ", 6) == 0)
			return client_fetch_self(opts, fd, line + 6);
		else if (strcmp(line, "READY") == 0)
			break;
		else
		{
			close(fd);
			return client_fetch_self(opts, -1, "the prefetcher's answer makes no sense");
		}
	}

	/*
	 * The file is ours until we close the connection: complete, checked and
	 * fsynced.  A rename puts it in place; if that fails (another file
	 * system, say), fetch it the usual way.
	 */
	snprintf(spool_path, sizeof(spool_path), "%s/%s", WV_SPOOL_DIR,
			 opts->file_name);
	if (rename(spool_path, opts->dest) != 0)
	{
		char		reason[WV_MAXPATH + 64];

		snprintf(reason, sizeof(reason),
				 "could not rename \"%s\" to the destination: %s",
				 spool_path, strerror(errno));
		close(fd);
		return client_fetch_self(opts, -1, reason);
	}
	close(fd);
	wv_fsync_parent_dir(opts->dest);
	wv_verbose("restored \"%s\" from the prefetch spool", opts->file_name);
	return WV_EXIT_RESTORED;
}

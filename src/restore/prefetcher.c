/*-------------------------------------------------------------------------
 *
 * prefetcher.c
 *	  The detached process that fetches the next segments ahead of recovery.
 *
 * With -j N, the first pg_walvault_restore the server runs for a segment
 * starts this process (prefetch_client.c) and every later one asks it for
 * its segment over a Unix socket in the spool (spool.c).  When the server
 * asks for segment S of timeline T, the prefetcher fetches S+1 ... S+N of
 * timeline T, N at a time, each in a worker process of its own running the
 * very code of a serial restore (fetch.c) into the spool: read, decompress,
 * check against the server (wal_check.c), fsync, rename.  The next requests
 * then find their segment ready, and are served with a rename into pg_wal.
 *
 * Processes.  The prefetcher (one per data directory, by the spool's lock)
 * is single-threaded around poll(): its listening socket, its clients'
 * connections, and a self-pipe written by the SIGCHLD and SIGTERM handlers.
 * Workers are forked per file and report by their exit status only: 0
 * fetched (the file is in the spool under its name), 1 not in the archive,
 * anything else failed.  On Linux a worker dies with its prefetcher
 * (PR_SET_PDEATHSIG), so none outlives it.
 *
 * Protocol (lines of text):
 *
 *	client: GET <segment> <postmaster pid> <archive key>
 *	prefetcher: NOTE <text>			zero or more, printed by the client with -v
 *	prefetcher: READY				the file is in the spool under its name,
 *									lent to this connection: the client
 *									renames it to its destination, then closes
 *	prefetcher: FETCH <reason>		not prefetched: the client fetches it
 *									itself, as without -j, then says
 *	client: DONE <status> <bytes>	(status 0 restored, 1 not in the archive)
 *
 * A request for a segment being fetched waits for its worker.  Nothing but
 * success is ever kept: a segment a worker found missing, corrupt or
 * unreadable is answered with FETCH, so that the client fetches it again
 * itself and exits exactly as a serial restore would (1, or an error that
 * stops recovery).  A corrupt prefetched segment can therefore never be
 * skipped, nor a missing one taken for the end of the archive too early.
 *
 * What is served: only a file one of our own workers completed, under the
 * exact name asked for, so never a segment of another timeline.  What is
 * kept: on each request for (T, S), everything below S, of an older
 * timeline than T, or beyond S+N is dropped (recovery moved on); at most N
 * segments are in the spool or being fetched, and their bytes (each
 * reserved at the segment size before it is fetched) stay under
 * --spool-size.  The segment size is learnt from the first segment the
 * server restores; nothing is prefetched before.  A segment found missing
 * stops prefetching beyond it until recovery gets past it, so that a
 * standby waiting at the end of the archive does not poll it N times over.
 *
 * Lifetime.  The prefetcher exits, killing its workers and emptying and
 * removing the spool, when it was idle for --idle-timeout seconds (no
 * request came, no worker ran, no client was connected: a segment slower
 * to fetch than the timeout is never abandoned), when recovery ends
 * (recovery.signal and standby.signal are gone), when the postmaster it
 * was started for is gone (checked every second, through postmaster.pid
 * and kill(0)), and on SIGTERM.  So it never outlives the cluster by more
 * than the idle timeout.  Killed with SIGKILL, it leaves a spool that
 * nothing serves from (spool.c); the next request finds a dead socket and
 * starts a new prefetcher, which empties it first.  Requests
 * whose postmaster pid is not the one the prefetcher watches are not
 * served from the spool.  Nor are requests whose archive key
 * (wv_archive_key(): a hash of the options that name the archive) is not
 * the prefetcher's: a restore_command changed to another archive must not
 * be served what was fetched from the old one.  The prefetcher exits then,
 * and the next request starts one for the new archive.
 *
 * Every failure of the prefetcher itself only ever costs speed: a client
 * that cannot reach it, or loses it mid-request, fetches its file itself.
 *
 * src/restore/prefetcher.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "restore.h"

#define PF_MAX_ENTRIES	(4 * WV_MAX_JOBS)
#define PF_MAX_CONNS	16
#define PF_MAX_NOTES	64
#define PF_NOTE_LEN		200
#define PF_LINE_LEN		128
#define PF_TICK_MS		1000

typedef enum PfEntryState
{
	PF_FETCHING,				/* a worker is fetching it */
	PF_READY,					/* complete in the spool */
	PF_LENT,					/* handed to a client, who renames it away */
	PF_MISSING,					/* not in the archive when last looked */
	PF_FAILED					/* the worker failed: the client will see why */
} PfEntryState;

typedef struct PfEntry
{
	bool		used;
	char		name[WALVAULT_MAX_NAME_LEN + 1];
	uint32_t	tli;
	uint64_t	segno;
	PfEntryState state;
	pid_t		pid;			/* PF_FETCHING: the worker */
	bool		dropped;		/* PF_FETCHING: killed, not wanted any more */
	uint64_t	bytes;			/* size, or reservation while fetching */
	int			conn;			/* PF_LENT: the connection */
	struct timespec started;
} PfEntry;

typedef enum PfConnState
{
	PF_CONN_FREE,
	PF_CONN_READING,			/* waiting for GET */
	PF_CONN_WAITING,			/* its segment is being fetched */
	PF_CONN_LENT,				/* was answered READY */
	PF_CONN_SELF				/* was answered FETCH: waiting for DONE */
} PfConnState;

typedef struct PfConn
{
	int			fd;
	PfConnState state;
	char		buf[PF_LINE_LEN];
	size_t		len;
	char		name[WALVAULT_MAX_NAME_LEN + 1];
	int			entry;			/* WAITING, LENT */
} PfConn;

static struct
{
	const RestoreOptions *opts;
	long		postmaster_pid;
	char		archive_key[32];	/* of the archive we fetch from */
	int			lock_fd;
	int			listen_fd;
	int			wake_pipe[2];
	PfEntry		entries[PF_MAX_ENTRIES];
	PfConn		conns[PF_MAX_CONNS];
	int			nworkers;
	uint32_t	seg_size;		/* 0 until known */
	bool		have_asked;
	uint32_t	asked_tli;
	uint64_t	asked_segno;
	struct timespec idle_since; /* the last request or work that ended */
	char		notes[PF_MAX_NOTES][PF_NOTE_LEN];
	int			nnotes;
	int			notes_lost;
} pf;

static volatile sig_atomic_t pf_stop_requested = 0;

static void pf_note(const char *fmt,...) WV_PRINTF_ATTR(1, 2);
static double pf_elapsed_ms(const struct timespec *since);
static void pf_signal_handler(int signo);
static void pf_detach(int ready_fd);
static void pf_listen(void);
static void pf_exit(const char *reason) WV_NORETURN;
static void pf_sweep(void);
static int	pf_find(const char *name);
static void pf_remove_entry(int i);
static void pf_drop_entry(int i);
static void pf_start_worker(uint32_t tli, uint64_t segno);
static void pf_worker_main(const char *name, int distance) WV_NORETURN;
static void pf_reap(void);
static void pf_worker_done(int i, int status);
static void pf_wake_waiters(int i);
static void pf_schedule(void);
static void pf_accept(void);
static void pf_conn_input(int c);
static void pf_conn_line(int c, char *line);
static void pf_conn_get(int c, const char *name, long postmaster_pid,
						const char *archive_key);
static void pf_conn_done(int c, int status, unsigned long long bytes);
static void pf_conn_close(int c);
static void pf_send(int c, const char *fmt,...) WV_PRINTF_ATTR(2, 3);
static void pf_answer_ready(int c, int i);
static void pf_answer_fetch(int c, const char *reason);
static void pf_watchdog(void);

/*
 * Queue a note for the next client to print (with -v): the prefetcher has
 * no terminal, and its clients' stderr is the server log.
 */
static void
pf_note(const char *fmt,...)
{
	va_list		ap;

	if (pf.nnotes == PF_MAX_NOTES)
	{
		pf.notes_lost++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(pf.notes[pf.nnotes], PF_NOTE_LEN, fmt, ap);
	va_end(ap);
	pf.nnotes++;
}

static double
pf_elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000.0 +
		(now.tv_nsec - since->tv_nsec) / 1e6;
}

static void
pf_signal_handler(int signo)
{
	int			save_errno = errno;
	char		c = (char) signo;

	if (signo != SIGCHLD)
		pf_stop_requested = 1;
	if (write(pf.wake_pipe[1], &c, 1) < 0)
	{
		/* the pipe is full: poll() will wake anyway */
	}
	errno = save_errno;
}

/*
 * Leave the client's world: its standard streams are the server log, and it
 * inherited whatever the server's startup process had open.
 */
static void
pf_detach(int ready_fd)
{
	int			null_fd = open("/dev/null", O_RDWR);
	DIR		   *d;
	struct sigaction sa;

	if (null_fd >= 0)
	{
		dup2(null_fd, 0);
		dup2(null_fd, 1);
		dup2(null_fd, 2);
		if (null_fd > 2)
			close(null_fd);
	}

	/* close everything else but the pipe to the client that started us */
	d = opendir("/proc/self/fd");
	if (d != NULL)
	{
		struct dirent *de;
		int			dfd = dirfd(d);
		int			fds[1024];
		int			nfds = 0;

		while ((de = readdir(d)) != NULL && nfds < 1024)
		{
			int			fd = atoi(de->d_name);

			if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && fd > 2 &&
				fd != ready_fd && fd != dfd)
				fds[nfds++] = fd;
		}
		closedir(d);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
	else
	{
		for (int fd = 3; fd < 1024; fd++)
			if (fd != ready_fd)
				close(fd);
	}

	umask(077);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = pf_signal_handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
}

/* Bind the socket (relative to the data directory, our working directory). */
static void
pf_listen(void)
{
	struct sockaddr_un addr;

	(void) unlink(WV_SPOOL_SOCKET);
	pf.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (pf.listen_fd < 0)
		pf_exit("could not create socket");
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", WV_SPOOL_SOCKET);
	if (bind(pf.listen_fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
		listen(pf.listen_fd, PF_MAX_CONNS) != 0)
		pf_exit("could not listen on the socket");
	fcntl(pf.listen_fd, F_SETFL, fcntl(pf.listen_fd, F_GETFL) | O_NONBLOCK);
	fcntl(pf.listen_fd, F_SETFD, FD_CLOEXEC);
}

/*
 * Leave: stop taking requests, kill the workers, empty and remove the
 * spool.  A client holding a lent file loses it and fetches its segment
 * itself.
 */
static void
pf_exit(const char *reason)
{
	(void) reason;

	if (pf.listen_fd >= 0)
	{
		(void) unlink(WV_SPOOL_SOCKET);
		close(pf.listen_fd);
		pf.listen_fd = -1;
	}
	for (int i = 0; i < PF_MAX_ENTRIES; i++)
		if (pf.entries[i].used && pf.entries[i].state == PF_FETCHING)
			kill(pf.entries[i].pid, SIGKILL);
	while (pf.nworkers > 0)
	{
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			break;
		pf.nworkers--;
	}
	for (int c = 0; c < PF_MAX_CONNS; c++)
		if (pf.conns[c].state != PF_CONN_FREE)
			close(pf.conns[c].fd);
	memset(pf.entries, 0, sizeof(pf.entries));
	pf_sweep();
	spool_unlock_remove(pf.lock_fd);
	exit(0);
}

/*
 * Remove from the spool everything that is not a file we serve or a
 * temporary file of a worker still running: what a killed prefetcher or
 * worker left, and what was dropped.
 */
static void
pf_sweep(void)
{
	DIR		   *d = opendir(WV_SPOOL_DIR);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
	{
		const char *name = de->d_name;
		char		path[WV_MAXPATH];
		long		owner;
		bool		keep = false;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
			strcmp(name, "prefetcher.lock") == 0 ||
			(strcmp(name, "prefetcher.sock") == 0 && pf.listen_fd >= 0))
			continue;

		if (spool_temp_owner(name, &owner))
		{
			for (int i = 0; i < PF_MAX_ENTRIES; i++)
				if (pf.entries[i].used && pf.entries[i].state == PF_FETCHING &&
					pf.entries[i].pid == owner)
					keep = true;
		}
		else
		{
			int			i = pf_find(name);

			keep = i >= 0 && (pf.entries[i].state == PF_READY ||
							  pf.entries[i].state == PF_LENT ||
							  (pf.entries[i].state == PF_FETCHING &&
							   !pf.entries[i].dropped));
		}
		if (!keep)
		{
			snprintf(path, sizeof(path), "%s/%s", WV_SPOOL_DIR, name);
			(void) unlink(path);
		}
	}
	closedir(d);
}

static int
pf_find(const char *name)
{
	for (int i = 0; i < PF_MAX_ENTRIES; i++)
		if (pf.entries[i].used && strcmp(pf.entries[i].name, name) == 0)
			return i;
	return -1;
}

static void
pf_remove_entry(int i)
{
	memset(&pf.entries[i], 0, sizeof(PfEntry));
}

/*
 * Recovery moved past this entry: forget it.  A worker still fetching it is
 * killed, and forgotten when reaped.
 */
static void
pf_drop_entry(int i)
{
	PfEntry    *e = &pf.entries[i];
	char		path[WV_MAXPATH];

	switch (e->state)
	{
		case PF_FETCHING:
			if (!e->dropped)
			{
				kill(e->pid, SIGKILL);
				e->dropped = true;
				pf_note("dropped %s: recovery moved on while it was fetched",
						e->name);
			}
			return;
		case PF_READY:
			snprintf(path, sizeof(path), "%s/%s", WV_SPOOL_DIR, e->name);
			(void) unlink(path);
			pf_note("dropped %s: recovery moved on", e->name);
			break;
		case PF_LENT:
			return;				/* the client that has it decides */
		case PF_MISSING:
		case PF_FAILED:
			break;
	}
	pf_remove_entry(i);
}

static void
pf_start_worker(uint32_t tli, uint64_t segno)
{
	PfEntry    *e = NULL;
	pid_t		pid;

	for (int i = 0; i < PF_MAX_ENTRIES; i++)
		if (!pf.entries[i].used)
		{
			e = &pf.entries[i];
			break;
		}
	if (e == NULL)
		return;

	memset(e, 0, sizeof(*e));
	spool_segment_name(e->name, tli, segno, pf.seg_size);
	e->tli = tli;
	e->segno = segno;
	clock_gettime(CLOCK_MONOTONIC, &e->started);

	pid = fork();
	if (pid < 0)
	{
		pf_note("could not start a worker for %s: %s", e->name,
				strerror(errno));
		memset(e, 0, sizeof(*e));
		return;
	}
	if (pid == 0)
		pf_worker_main(e->name, (int) (segno - pf.asked_segno));

	e->used = true;
	e->state = PF_FETCHING;
	e->pid = pid;
	e->bytes = pf.seg_size;
	pf.nworkers++;
	pf_note("prefetching %s (worker %ld)", e->name, (long) pid);
}

/*
 * A worker: fetch one segment into the spool with the serial code, and say
 * how it went by the exit status alone.
 *
 * It runs at a lower priority the further its segment is from the one being
 * replayed (nice 1 for the next one, up to 19).  Replay in the startup
 * process is what recovery waits for, then the next segment: when workers
 * are CPU-bound (decompressing) on a machine with few CPUs, an even share
 * among N of them would starve both.  Workers waiting on storage are not
 * affected.
 */
static void
pf_worker_main(const char *name, int distance)
{
	struct sigaction sa;
	char		dest[WV_MAXPATH];
	pid_t		parent = getppid();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	close(pf.wake_pipe[0]);
	close(pf.wake_pipe[1]);
	if (pf.listen_fd >= 0)
		close(pf.listen_fd);
	for (int c = 0; c < PF_MAX_CONNS; c++)
		if (pf.conns[c].state != PF_CONN_FREE)
			close(pf.conns[c].fd);
	close(pf.lock_fd);

#ifdef __linux__
	/* die with the prefetcher; it may already be gone */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
	if (getppid() != parent)
		_exit(WV_EXIT_FATAL);
	(void) setpriority(PRIO_PROCESS, 0, distance < 1 ? 1 : distance > 19 ? 19 : distance);

	wv_install_signal_cleanup();
	wv_fetch_in_worker();
	snprintf(dest, sizeof(dest), "%s/%s", WV_SPOOL_DIR, name);
	exit(wv_fetch(wv_open_source(pf.opts), name, WALVAULT_FILE_SEGMENT, dest,
				  pf.seg_size, NULL));
}

static void
pf_reap(void)
{
	int			status;
	pid_t		pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
	{
		pf.nworkers--;
		clock_gettime(CLOCK_MONOTONIC, &pf.idle_since);
		for (int i = 0; i < PF_MAX_ENTRIES; i++)
			if (pf.entries[i].used && pf.entries[i].state == PF_FETCHING &&
				pf.entries[i].pid == pid)
			{
				pf_worker_done(i, status);
				break;
			}
	}
}

static void
pf_worker_done(int i, int status)
{
	PfEntry    *e = &pf.entries[i];
	char		path[WV_MAXPATH];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", WV_SPOOL_DIR, e->name);
	if (e->dropped)
	{
		(void) unlink(path);
		pf_remove_entry(i);
		pf_sweep();
		pf_wake_waiters(i);
		return;
	}

	if (WIFEXITED(status) && WEXITSTATUS(status) == WV_EXIT_RESTORED &&
		stat(path, &st) == 0 && S_ISREG(st.st_mode))
	{
		e->state = PF_READY;
		e->bytes = (uint64_t) st.st_size;
		pf_note("prefetched %s (%llu bytes, %.0f ms)", e->name,
				(unsigned long long) e->bytes, pf_elapsed_ms(&e->started));
	}
	else if (WIFEXITED(status) && WEXITSTATUS(status) == WV_EXIT_NOT_FOUND)
	{
		e->state = PF_MISSING;
		pf_note("%s is not in the archive (yet): prefetching pauses there",
				e->name);
	}
	else
	{
		e->state = PF_FAILED;
		if (WIFSIGNALED(status))
			pf_note("prefetch of %s failed: worker killed by signal %d",
					e->name, WTERMSIG(status));
		else
			pf_note("prefetch of %s failed (exit status %d): its request fetches it again",
					e->name, WEXITSTATUS(status));
		pf_sweep();
	}
	pf_wake_waiters(i);
}

/* Answer the connections waiting for entry i, now that it is settled. */
static void
pf_wake_waiters(int i)
{
	for (int c = 0; c < PF_MAX_CONNS; c++)
	{
		PfConn	   *conn = &pf.conns[c];

		if (conn->state != PF_CONN_WAITING || conn->entry != i)
			continue;
		if (pf.entries[i].used && pf.entries[i].state == PF_READY)
			pf_answer_ready(c, i);
		else if (pf.entries[i].used && pf.entries[i].state == PF_LENT)
			continue;			/* still someone else's */
		else if (pf.entries[i].used && pf.entries[i].state == PF_MISSING)
			pf_answer_fetch(c, "the prefetcher did not find it in the archive");
		else if (pf.entries[i].used && pf.entries[i].state == PF_FAILED)
			pf_answer_fetch(c, "its prefetch failed");
		else
			pf_answer_fetch(c, "not prefetched");
	}
}

/*
 * Start workers for the segments after the last one asked for, within the
 * bounds.
 */
static void
pf_schedule(void)
{
	uint64_t	floor = UINT64_MAX;
	uint64_t	spool_bytes = 0;
	int			files = 0;

	if (!pf.have_asked || pf.seg_size == 0)
		return;

	for (int i = 0; i < PF_MAX_ENTRIES; i++)
	{
		PfEntry    *e = &pf.entries[i];

		if (!e->used)
			continue;
		if (e->state == PF_MISSING && e->tli == pf.asked_tli &&
			e->segno >= pf.asked_segno && e->segno < floor)
			floor = e->segno;
		if (e->state == PF_FETCHING || e->state == PF_READY ||
			e->state == PF_LENT)
		{
			spool_bytes += e->bytes;
			files++;
		}
	}

	for (int k = 1; k <= pf.opts->jobs; k++)
	{
		uint64_t	segno = pf.asked_segno + k;
		char		name[WALVAULT_MAX_NAME_LEN + 1];

		if (segno >= floor)
			break;
		spool_segment_name(name, pf.asked_tli, segno, pf.seg_size);
		if (pf_find(name) >= 0)
			continue;
		if (pf.nworkers >= pf.opts->jobs || files >= pf.opts->jobs ||
			spool_bytes + pf.seg_size > pf.opts->spool_size)
			break;
		pf_start_worker(pf.asked_tli, segno);
		spool_bytes += pf.seg_size;
		files++;
	}
}

static void
pf_accept(void)
{
	for (;;)
	{
		int			fd = accept(pf.listen_fd, NULL, NULL);
		int			c;

		if (fd < 0)
			return;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		for (c = 0; c < PF_MAX_CONNS; c++)
			if (pf.conns[c].state == PF_CONN_FREE)
				break;
		if (c == PF_MAX_CONNS)
		{
			/* the client sees the connection closed, and fetches itself */
			close(fd);
			continue;
		}
		memset(&pf.conns[c], 0, sizeof(PfConn));
		pf.conns[c].fd = fd;
		pf.conns[c].state = PF_CONN_READING;
		pf.conns[c].entry = -1;
	}
}

static void
pf_conn_input(int c)
{
	PfConn	   *conn = &pf.conns[c];
	ssize_t		n;
	char	   *nl;

	n = read(conn->fd, conn->buf + conn->len, sizeof(conn->buf) - 1 - conn->len);
	if (n <= 0)
	{
		if (n < 0 && errno == EINTR)
			return;
		pf_conn_close(c);
		return;
	}
	conn->len += (size_t) n;
	conn->buf[conn->len] = '\0';

	while (conn->state != PF_CONN_FREE &&
		   (nl = strchr(conn->buf, '\n')) != NULL)
	{
		char		line[PF_LINE_LEN];
		size_t		llen = (size_t) (nl - conn->buf);

		memcpy(line, conn->buf, llen);
		line[llen] = '\0';
		memmove(conn->buf, nl + 1, conn->len - llen - 1);
		conn->len -= llen + 1;
		conn->buf[conn->len] = '\0';
		pf_conn_line(c, line);
	}
	if (conn->state != PF_CONN_FREE && conn->len == sizeof(conn->buf) - 1)
		pf_conn_close(c);		/* not our protocol */
}

static void
pf_conn_line(int c, char *line)
{
	char		name[PF_LINE_LEN];
	char		key[PF_LINE_LEN];
	long		pm;
	int			status;
	unsigned long long bytes;

	if (pf.conns[c].state == PF_CONN_READING &&
		sscanf(line, "GET %40s %ld %31s", name, &pm, key) == 3)
		pf_conn_get(c, name, pm, key);
	else if (pf.conns[c].state == PF_CONN_SELF &&
			 sscanf(line, "DONE %d %llu", &status, &bytes) == 2)
		pf_conn_done(c, status, bytes);
	else
		pf_conn_close(c);
}

/* A request for one segment: drop what recovery is past, answer, go on. */
static void
pf_conn_get(int c, const char *name, long postmaster_pid,
			const char *archive_key)
{
	PfConn	   *conn = &pf.conns[c];
	uint32_t	tli;
	uint64_t	segno;
	int			i;

	if (walvault_classify_name(name) != WALVAULT_FILE_SEGMENT)
	{
		pf_conn_close(c);
		return;
	}
	snprintf(conn->name, sizeof(conn->name), "%s", name);

	if (postmaster_pid != pf.postmaster_pid)
	{
		/* a new server on this data directory: this spool is not its */
		pf_answer_fetch(c, "the prefetcher belongs to another server process");
		pf_stop_requested = 1;
		return;
	}
	if (strcmp(archive_key, pf.archive_key) != 0)
	{
		/* restore_command changed: make way for a prefetcher of its own */
		pf_answer_fetch(c, "the prefetcher was started for another archive");
		pf_stop_requested = 1;
		return;
	}
	if (pf.seg_size == 0 ||
		!spool_segment_parse(name, pf.seg_size, &tli, &segno))
	{
		pf_answer_fetch(c, "the segment size is not known yet");
		return;
	}

	pf.have_asked = true;
	pf.asked_tli = tli;
	pf.asked_segno = segno;
	for (i = 0; i < PF_MAX_ENTRIES; i++)
	{
		PfEntry    *e = &pf.entries[i];

		if (e->used && strcmp(e->name, name) != 0 &&
			(e->segno < segno || e->tli < tli ||
			 (e->tli == tli && e->segno > segno + (uint64_t) pf.opts->jobs)))
			pf_drop_entry(i);
	}

	i = pf_find(name);
	if (i < 0)
		pf_answer_fetch(c, "not prefetched");
	else if (pf.entries[i].state == PF_READY)
		pf_answer_ready(c, i);
	else if (pf.entries[i].state == PF_FETCHING && pf.entries[i].dropped)
		pf_answer_fetch(c, "not prefetched");
	else if (pf.entries[i].state == PF_FETCHING ||
			 pf.entries[i].state == PF_LENT)
	{
		conn->state = PF_CONN_WAITING;
		conn->entry = i;
	}
	else if (pf.entries[i].state == PF_MISSING)
		pf_answer_fetch(c, "the prefetcher did not find it in the archive");
	else
		pf_answer_fetch(c, "its prefetch failed");
	pf_schedule();
}

/* The client fetched its segment itself: learn from how it went. */
static void
pf_conn_done(int c, int status, unsigned long long bytes)
{
	int			i = pf_find(pf.conns[c].name);

	if (status == WV_EXIT_RESTORED)
	{
		if (pf.seg_size == 0 && wv_is_valid_segment_size(bytes))
		{
			uint32_t	tli;
			uint64_t	segno;

			pf.seg_size = (uint32_t) bytes;
			if (spool_segment_parse(pf.conns[c].name, pf.seg_size, &tli,
									&segno))
			{
				pf.have_asked = true;
				pf.asked_tli = tli;
				pf.asked_segno = segno;
			}
			pf_note("segment size %u bytes: prefetching %d segments ahead",
					pf.seg_size, pf.opts->jobs);
		}
		if (i >= 0 && (pf.entries[i].state == PF_MISSING ||
					   pf.entries[i].state == PF_FAILED))
			pf_remove_entry(i);
	}
	else if (status == WV_EXIT_NOT_FOUND && i < 0 && pf.seg_size != 0)
	{
		uint32_t	tli;
		uint64_t	segno;

		if (spool_segment_parse(pf.conns[c].name, pf.seg_size, &tli, &segno))
		{
			for (i = 0; i < PF_MAX_ENTRIES; i++)
				if (!pf.entries[i].used)
				{
					PfEntry    *e = &pf.entries[i];

					memset(e, 0, sizeof(*e));
					e->used = true;
					memcpy(e->name, pf.conns[c].name, sizeof(e->name));
					e->tli = tli;
					e->segno = segno;
					e->state = PF_MISSING;
					break;
				}
		}
	}
	pf_conn_close(c);
	pf_schedule();
}

static void
pf_conn_close(int c)
{
	PfConn	   *conn = &pf.conns[c];

	clock_gettime(CLOCK_MONOTONIC, &pf.idle_since);
	if (conn->state == PF_CONN_LENT && conn->entry >= 0 &&
		pf.entries[conn->entry].used &&
		pf.entries[conn->entry].state == PF_LENT &&
		pf.entries[conn->entry].conn == c)
	{
		int			i = conn->entry;
		char		path[WV_MAXPATH];
		struct stat st;

		/* taken (renamed away), or given back */
		snprintf(path, sizeof(path), "%s/%s", WV_SPOOL_DIR,
				 pf.entries[i].name);
		if (stat(path, &st) == 0)
			pf.entries[i].state = PF_READY;
		else
			pf_remove_entry(i);
		close(conn->fd);
		memset(conn, 0, sizeof(*conn));
		conn->state = PF_CONN_FREE;
		pf_wake_waiters(i);
		return;
	}
	close(conn->fd);
	memset(conn, 0, sizeof(*conn));
	conn->state = PF_CONN_FREE;
}

/* Write a line, with the queued notes before it. */
static void
pf_send(int c, const char *fmt,...)
{
	char		buf[PF_MAX_NOTES * (PF_NOTE_LEN + 8) + 256];
	size_t		len = 0;
	va_list		ap;
	const char *p;

	for (int n = 0; n < pf.nnotes; n++)
		len += snprintf(buf + len, sizeof(buf) - len, "NOTE %s\n",
						pf.notes[n]);
	if (pf.notes_lost > 0)
		len += snprintf(buf + len, sizeof(buf) - len,
						"NOTE %d more notes were lost\n", pf.notes_lost);
	pf.nnotes = 0;
	pf.notes_lost = 0;

	va_start(ap, fmt);
	len += vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	va_end(ap);
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;

	/* the client waits for this: a blocking write of a few kB is fine */
	p = buf;
	while (len > 0)
	{
		ssize_t		n = write(pf.conns[c].fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		len -= (size_t) n;
	}
}

static void
pf_answer_ready(int c, int i)
{
	pf.entries[i].state = PF_LENT;
	pf.entries[i].conn = c;
	pf.conns[c].state = PF_CONN_LENT;
	pf.conns[c].entry = i;
	pf_send(c, "READY\n");
}

static void
pf_answer_fetch(int c, const char *reason)
{
	pf.conns[c].state = PF_CONN_SELF;
	pf.conns[c].entry = -1;
	pf_send(c, "FETCH %s\n", reason);
}

/*
 * Is there still a reason to live?  Idle means nothing in flight: no
 * worker (a fetch slower than the timeout is still wanted) and no client
 * connected (waiting for its segment, or fetching it itself); the timeout
 * counts from the moment the last of them ended.
 */
static void
pf_watchdog(void)
{
	struct stat st;
	bool		busy = pf.nworkers > 0;

	if (pf_stop_requested)
		pf_exit("terminated");
	if (wv_read_postmaster_pid() != pf.postmaster_pid ||
		(kill((pid_t) pf.postmaster_pid, 0) != 0 && errno == ESRCH))
		pf_exit("the server stopped");
	if (stat("recovery.signal", &st) != 0 && stat("standby.signal", &st) != 0)
		pf_exit("recovery ended");
	for (int c = 0; c < PF_MAX_CONNS; c++)
		if (pf.conns[c].state != PF_CONN_FREE)
			busy = true;
	if (busy)
		clock_gettime(CLOCK_MONOTONIC, &pf.idle_since);
	else if (pf_elapsed_ms(&pf.idle_since) >= pf.opts->idle_timeout * 1000.0)
		pf_exit("idle");
}

/*
 * The prefetcher's life, in the grandchild of the first client (detached:
 * its own session, no terminal).  ready_fd gets one byte once requests can
 * be made; it is closed without one if another prefetcher holds the spool.
 */
void
prefetcher_main(const RestoreOptions *opts, long postmaster_pid, int ready_fd)
{
	struct pollfd fds[2 + PF_MAX_CONNS];
	int			conn_of[2 + PF_MAX_CONNS];

	memset(&pf, 0, sizeof(pf));
	pf.opts = opts;
	pf.postmaster_pid = postmaster_pid;
	wv_archive_key(opts, pf.archive_key, sizeof(pf.archive_key));
	pf.listen_fd = -1;
	for (int c = 0; c < PF_MAX_CONNS; c++)
		pf.conns[c].state = PF_CONN_FREE;

	pf_detach(ready_fd);
	if (pipe(pf.wake_pipe) != 0)
		exit(0);
	for (int k = 0; k < 2; k++)
	{
		fcntl(pf.wake_pipe[k], F_SETFL,
			  fcntl(pf.wake_pipe[k], F_GETFL) | O_NONBLOCK);
		fcntl(pf.wake_pipe[k], F_SETFD, FD_CLOEXEC);
	}

	pf.lock_fd = spool_lock();
	if (pf.lock_fd < 0)
		exit(0);				/* another prefetcher has the spool */

	/* nothing a previous prefetcher left is ever served */
	pf_sweep();
	pf_listen();
	clock_gettime(CLOCK_MONOTONIC, &pf.idle_since);
	pf_note("prefetcher started (pid %ld, %d jobs, idle timeout %d s)",
			(long) getpid(), opts->jobs, opts->idle_timeout);

	if (write(ready_fd, "R", 1) != 1)
	{
		/* the client is gone; the next one will find us */
	}
	close(ready_fd);

	for (;;)
	{
		int			nfds = 0;
		int			rc;

		fds[nfds].fd = pf.wake_pipe[0];
		fds[nfds].events = POLLIN;
		conn_of[nfds++] = -1;
		fds[nfds].fd = pf.listen_fd;
		fds[nfds].events = POLLIN;
		conn_of[nfds++] = -1;
		for (int c = 0; c < PF_MAX_CONNS; c++)
			if (pf.conns[c].state != PF_CONN_FREE)
			{
				fds[nfds].fd = pf.conns[c].fd;
				fds[nfds].events = POLLIN;
				conn_of[nfds++] = c;
			}

		rc = poll(fds, nfds, PF_TICK_MS);
		if (rc < 0 && errno != EINTR)
			pf_exit("poll failed");

		if (rc > 0 && (fds[0].revents & POLLIN))
		{
			char		drain[64];

			while (read(pf.wake_pipe[0], drain, sizeof(drain)) > 0)
				;
		}
		pf_reap();
		pf_watchdog();
		if (rc > 0)
		{
			if (fds[1].revents & POLLIN)
				pf_accept();
			for (int k = 2; k < nfds; k++)
				if (fds[k].revents & (POLLIN | POLLHUP | POLLERR) &&
					pf.conns[conn_of[k]].state != PF_CONN_FREE &&
					pf.conns[conn_of[k]].fd == fds[k].fd)
					pf_conn_input(conn_of[k]);
		}
		pf_schedule();
	}
}

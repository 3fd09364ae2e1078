/*-------------------------------------------------------------------------
 *
 * verify_sql.c
 *	  pg_walvault_verify(): verify the configured archive from SQL.
 *
 * The checks of an archive are those of the restore program, and they end
 * the process on the first error (src/restore/report.c): they cannot run
 * in a backend.  So the backend runs the program itself, the
 * pg_walvault_restore installed beside the server's postgres binary, as
 *
 *		pg_walvault_restore --verify --format=tsv -j N -D <data directory>
 *			-d <pg_walvault.archive_directory>
 *		  | -u <pg_walvault.archive_url> --s3-... <the pg_walvault.s3_* settings>
 *
 * and turns the rows it prints (timeline, kind, first, last, status,
 * detail) into the rows of the function.  -D makes every segment be
 * checked against this cluster's system identifier and WAL version, as a
 * restore_command run here would check it.  Progress rows become NOTICEs
 * when progress is asked for, DEBUG1 messages otherwise.
 *
 * The child is forked and exec'd directly (not through a shell), with its
 * stdout and stderr on one pipe; on Linux it is killed if this backend
 * dies.  The backend waits for output with WaitLatchOrSocket() and checks
 * for interrupts between reads, so that a cancel, statement_timeout or
 * pg_terminate_backend() stops the verify at once: the child is then sent
 * SIGTERM (it kills its own workers) and, if it is still there a second
 * later, SIGKILL, and is reaped before the error propagates or the backend
 * exits (PG_ENSURE_ERROR_CLEANUP: a FATAL does not unwind PG_TRY).  No
 * lock is taken and no shared memory is touched: archiving goes on while
 * the archive is verified, at the price of the I/O the verify itself
 * costs.
 *
 * The program's exit status 0 (clean) and 1 (problems found) give rows,
 * the last of which is the summary; any other status (no archive there,
 * a store that refuses us) is an ERROR with the program's messages.
 *
 * src/verify_sql.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_walvault.h"
#include "s3_client.h"

PG_FUNCTION_INFO_V1(pg_walvault_verify_1_3);

#define VSQL_PROGRAM	"pg_walvault_restore"
#define VSQL_COLS		6
#define VSQL_MAX_ARGS	32
/* most of the program's own messages kept for the error's detail */
#define VSQL_MESSAGES_MAX 4096
/* how long the child has after SIGTERM before SIGKILL, in ms */
#define VSQL_TERM_GRACE_MS 1000

/* The child, while it runs; pid 0 when there is none to reap. */
typedef struct VsqlChild
{
	pid_t		pid;
	int			fd;				/* read end of its output, or -1 */
} VsqlChild;

/* static, so that the cleanup callback sees what the guarded block set */
static VsqlChild vsql_child = {0, -1};

static void vsql_program_path(char *path);
static int	vsql_build_args(char **argv, const char *program, int jobs);
static void vsql_spawn(VsqlChild *child, char **argv);
static void vsql_stop(VsqlChild *child);
static void vsql_stop_callback(int code, Datum arg);
static int	vsql_reap(VsqlChild *child);
static void vsql_line(char *line, ReturnSetInfo *rsinfo, bool progress,
					  StringInfo messages);

/*
 * The restore program installed with the server: in the directory of the
 * postgres binary that runs us (my_exec_path).
 */
static void
vsql_program_path(char *path)
{
	strlcpy(path, my_exec_path, MAXPGPATH);
	get_parent_directory(path);
	join_path_components(path, path, VSQL_PROGRAM);
	if (access(path, X_OK) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not find program \"%s\": %m", path),
				 errhint("pg_walvault_verify() runs the pg_walvault_restore program installed in the server's bindir; install pg_walvault there.")));
}

/*
 * The command line for the configured archive, into argv (VSQL_MAX_ARGS
 * entries, NULL-terminated).  Only the directory and object store targets
 * can be read back: what a command did with the files, we cannot know.
 */
static int
vsql_build_args(char **argv, const char *program, int jobs)
{
	const WalvaultTarget *target;
	int			nset;
	int			argc = 0;

	target = walvault_archive_target(&nset);
	if (nset == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no pg_walvault archive is configured"),
				 errdetail("None of pg_walvault.archive_directory, pg_walvault.archive_command and pg_walvault.archive_url is set."),
				 errhint("Set pg_walvault.archive_directory or pg_walvault.archive_url, or run pg_walvault_restore --verify on the archive.")));
	if (target == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("more than one pg_walvault archive target is set"),
				 errdetail("Of pg_walvault.archive_directory, pg_walvault.archive_command and pg_walvault.archive_url, only one may be set."),
				 errhint("Set only one of them in postgresql.conf and reload the server.")));
	if (target == &walvault_target_command)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an archive written by pg_walvault.archive_command cannot be verified"),
				 errdetail("Where and how the command stores files is unknown to pg_walvault."),
				 errhint("Run pg_walvault_restore --verify on the directory or object store the command writes to.")));

	argv[argc++] = pstrdup(program);
	argv[argc++] = "--verify";
	argv[argc++] = "--format=tsv";
	argv[argc++] = psprintf("--jobs=%d", jobs);
	argv[argc++] = psprintf("--pgdata=%s", DataDir);
	if (target == &walvault_target_directory)
		argv[argc++] = psprintf("--directory=%s", walvault_archive_directory);
	else
	{
		argv[argc++] = psprintf("--url=%s", walvault_archive_url);
		if (walvault_s3_endpoint[0] != '\0')
			argv[argc++] = psprintf("--s3-endpoint=%s", walvault_s3_endpoint);
		if (walvault_s3_region[0] != '\0')
			argv[argc++] = psprintf("--s3-region=%s", walvault_s3_region);
		argv[argc++] = psprintf("--s3-uri-style=%s",
								walvault_s3_uri_style == WV_S3_URI_PATH ?
								"path" : "host");
		if (walvault_s3_ca_file[0] != '\0')
			argv[argc++] = psprintf("--s3-ca-file=%s", walvault_s3_ca_file);
		/* the settings are in ms, the program's options in seconds */
		argv[argc++] = psprintf("--s3-connect-timeout=%d",
								Min((walvault_s3_connect_timeout + 999) / 1000, 3600));
		argv[argc++] = psprintf("--s3-stall-timeout=%d",
								Min((walvault_s3_stall_timeout + 999) / 1000, 3600));
	}
	argv[argc] = NULL;
	Assert(argc < VSQL_MAX_ARGS);
	return argc;
}

/*
 * Start the program with its stdout and stderr on a pipe we read.  Between
 * fork() and exec the child only makes async-signal-safe calls.
 */
static void
vsql_spawn(VsqlChild *child, char **argv)
{
	int			fds[2];
	pid_t		pid;

	if (pipe(fds) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create pipe: %m")));

	pid = fork();
	if (pid < 0)
	{
		int			save_errno = errno;

		close(fds[0]);
		close(fds[1]);
		errno = save_errno;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not fork: %m")));
	}
	if (pid == 0)
	{
		sigset_t	none;
		int			devnull;

		/* the backend blocks and ignores signals the program needs */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
		devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
			dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[1], STDERR_FILENO) < 0)
			_exit(127);

		/* none of the backend's files (the client's socket) goes along */
#if defined(__linux__) && defined(SYS_close_range)
		if (syscall(SYS_close_range, 3U, ~0U, 0) != 0)
#endif
			for (int fd = 3; fd < 1024; fd++)
				close(fd);

		execv(argv[0], argv);
		_exit(127);
	}

	close(fds[1]);
	child->pid = pid;
	child->fd = fds[0];
	if (fcntl(child->fd, F_SETFL, O_NONBLOCK) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not set pipe to non-blocking mode: %m")));
}

/*
 * Stop a child that is still running (on an error or a cancel), and reap
 * it: SIGTERM first, which makes it kill its workers, then SIGKILL.  Runs
 * in error cleanup: never throws.
 */
static void
vsql_stop(VsqlChild *child)
{
	int			status;

	if (child->fd >= 0)
	{
		close(child->fd);
		child->fd = -1;
	}
	if (child->pid <= 0)
		return;

	kill(child->pid, SIGTERM);
	for (int waited = 0; waited < VSQL_TERM_GRACE_MS; waited += 10)
	{
		if (waitpid(child->pid, &status, WNOHANG) != 0)
		{
			child->pid = 0;
			return;
		}
		pg_usleep(10000L);
	}
	kill(child->pid, SIGKILL);
	while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR)
		;
	child->pid = 0;
}

/*
 * On an ERROR, and on a FATAL exit (pg_terminate_backend(), which does not
 * unwind PG_TRY blocks): see PG_ENSURE_ERROR_CLEANUP.
 */
static void
vsql_stop_callback(int code, Datum arg)
{
	vsql_stop((VsqlChild *) DatumGetPointer(arg));
}

/*
 * Wait for the child to exit once its output ended, interruptibly.
 * Returns its wait status.
 */
static int
vsql_reap(VsqlChild *child)
{
	int			status;

	for (;;)
	{
		pid_t		rc = waitpid(child->pid, &status, WNOHANG);

		if (rc == child->pid)
			break;
		if (rc < 0 && errno != EINTR)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not wait for process %d: %m",
							(int) child->pid)));
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	child->pid = 0;
	return status;
}

/*
 * One line of the program's output: a row of six tab-separated fields
 * (an empty field is NULL), a progress row, or one of its own messages.
 */
static void
vsql_line(char *line, ReturnSetInfo *rsinfo, bool progress,
		  StringInfo messages)
{
	char	   *fields[VSQL_COLS];
	Datum		values[VSQL_COLS];
	bool		nulls[VSQL_COLS];
	char	   *p = line;
	int			ntabs = 0;

	for (const char *c = line; *c; c++)
		if (*c == '\t')
			ntabs++;
	if (ntabs != VSQL_COLS - 1)
	{
		/* one of the program's messages, for an error's detail */
		if (messages->len < VSQL_MESSAGES_MAX && line[0] != '\0')
		{
			if (messages->len > 0)
				appendStringInfoChar(messages, '\n');
			appendStringInfoString(messages, line);
		}
		return;
	}
	for (int i = 0; i < VSQL_COLS; i++)
	{
		char	   *tab = strchr(p, '\t');

		fields[i] = p;
		if (tab != NULL)
		{
			*tab = '\0';
			p = tab + 1;
		}
	}

	if (strcmp(fields[1], "progress") == 0)
	{
		ereport(progress ? NOTICE : DEBUG1,
				(errmsg_internal("pg_walvault_verify: %s", fields[5])));
		return;
	}

	for (int i = 0; i < VSQL_COLS; i++)
	{
		nulls[i] = fields[i][0] == '\0';
		if (nulls[i])
			values[i] = (Datum) 0;
		else if (i == 0)
			values[i] = Int32GetDatum((int32) strtoul(fields[i], NULL, 10));
		else
			values[i] = CStringGetTextDatum(fields[i]);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * pg_walvault_verify(jobs integer, progress boolean): the report of
 * pg_walvault_restore --verify on the configured archive, as rows.
 */
Datum
pg_walvault_verify_1_3(PG_FUNCTION_ARGS)
{
	int			jobs = PG_GETARG_INT32(0);
	bool		progress = PG_GETARG_BOOL(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		program[MAXPGPATH];
	char	   *argv[VSQL_MAX_ARGS];
	VsqlChild  *child = &vsql_child;
	StringInfoData pending;
	StringInfoData messages;
	MemoryContext line_context;
	MemoryContext oldcontext;
	int			status = 0;
	uint32		wait_event;

	if (jobs < 1 || jobs > 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must be between 1 and 64")));

	walvault_init_srf(fcinfo);
	if (rsinfo->setDesc->natts != VSQL_COLS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_walvault_verify() does not match the installed pg_walvault library"),
				 errhint("Run ALTER EXTENSION pg_walvault UPDATE.")));

	child->pid = 0;
	child->fd = -1;
	/* pg_stat_activity shows WalvaultVerify from 17 on, Extension before */
	wait_event = walvault_wait_event_info("WalvaultVerify", PG_WAIT_EXTENSION);
	vsql_program_path(program);
	vsql_build_args(argv, program, jobs);
	initStringInfo(&pending);
	initStringInfo(&messages);
	line_context = AllocSetContextCreate(CurrentMemoryContext,
										 "pg_walvault_verify line",
										 ALLOCSET_DEFAULT_SIZES);

	PG_ENSURE_ERROR_CLEANUP(vsql_stop_callback, PointerGetDatum(child));
	{
		vsql_spawn(child, argv);
		ereport(progress ? NOTICE : DEBUG1,
				(errmsg_internal("pg_walvault_verify: running %s as process %d",
								 VSQL_PROGRAM, (int) child->pid)));

		for (;;)
		{
			char		buf[8192];
			ssize_t		nread;
			int			rc;
			char	   *start;
			char	   *nl;

			rc = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | WL_SOCKET_READABLE |
								   WL_EXIT_ON_PM_DEATH,
								   child->fd, -1L, wait_event);
			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (!(rc & WL_SOCKET_READABLE))
				continue;

			nread = read(child->fd, buf, sizeof(buf));
			if (nread < 0)
			{
				if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
					continue;
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read from process %d: %m",
								(int) child->pid)));
			}
			if (nread == 0)
				break;

			/* complete lines go, a partial one waits for the rest */
			appendBinaryStringInfo(&pending, buf, (int) nread);
			start = pending.data;
			while ((nl = memchr(start, '\n',
								pending.len - (start - pending.data))) != NULL)
			{
				*nl = '\0';
				oldcontext = MemoryContextSwitchTo(line_context);
				vsql_line(start, rsinfo, progress, &messages);
				MemoryContextSwitchTo(oldcontext);
				MemoryContextReset(line_context);
				start = nl + 1;
			}
			if (start != pending.data)
			{
				int			rest = pending.len - (int) (start - pending.data);

				memmove(pending.data, start, rest);
				pending.len = rest;
				pending.data[rest] = '\0';
			}
		}
		if (pending.len > 0)
			vsql_line(pending.data, rsinfo, progress, &messages);

		close(child->fd);
		child->fd = -1;
		status = vsql_reap(child);
	}
	PG_END_ENSURE_ERROR_CLEANUP(vsql_stop_callback, PointerGetDatum(child));

	if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not verify the archive"),
				 errdetail("%s %s: %s", VSQL_PROGRAM,
						   WIFEXITED(status) ?
						   psprintf("exited with status %d", WEXITSTATUS(status)) :
						   psprintf("was terminated by signal %d",
									WIFSIGNALED(status) ? WTERMSIG(status) : 0),
						   messages.len > 0 ? messages.data : "no message")));

	MemoryContextDelete(line_context);
	return (Datum) 0;
}

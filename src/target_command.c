/*-------------------------------------------------------------------------
 *
 * target_command.c
 *	  Archive one WAL file by running pg_walvault.archive_command.
 *
 * The command is what a DBA would give PostgreSQL's own archive_command,
 * with the same placeholders: %p is the path of the file relative to the
 * data directory (our working directory), %f its name, %% a percent sign.
 * The difference is that archive workers run it for several files at once,
 * which is what hides the latency of a command that uploads, or merely
 * starts slowly.
 *
 * As with archive_command, exit status 0 must mean the file is durable
 * wherever the command put it: pg_walvault then reports it archived and the
 * server may remove it.  Any other status is an ERROR (trapped by the
 * caller: logged, counted, retried by the server).  A command that died on
 * SIGINT, SIGQUIT or SIGTERM is taken as a sign that we are being stopped
 * too (the postmaster signals our whole process group, the command
 * included): we exit FATAL, as the server's archiver does, and the file
 * goes back to the queue.
 *
 * The command runs in a shell we fork ourselves rather than through
 * system(), so that waiting for it does not stop us from absorbing
 * interrupts: DROP DATABASE, for one, waits until every process has
 * absorbed its procsignal barrier, and must not wait for an upload.  We
 * sleep on our latch and on a pipe whose write end only the command's
 * processes hold, which reaches end-of-file when they are gone; a timeout
 * bounds each sleep, in case the command leaves a process behind that
 * keeps the pipe open.  A command may also close the pipe long before it
 * exits (ssh closes the descriptors it inherits): a pipe at end-of-file is
 * readable at once, forever, so it is then no longer watched, and the
 * command is looked for after sleeps that grow from TCMD_FIRST_RECHECK_MS
 * (a command about to exit is seen soon) to TCMD_RECHECK_MS (a long one
 * costs one wakeup a second).
 *
 * src/target_command.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#include "pg_walvault.h"

/* How often the wait for the command looks whether it has exited. */
#define TCMD_RECHECK_MS		1000
/* The first such look once the pipe has reached end-of-file. */
#define TCMD_FIRST_RECHECK_MS	1

/* The shell running the command while it runs, 0 otherwise. */
static pid_t tcmd_child = 0;

static uint64 tcmd_archive(const char *file, const char *path,
						   uint64 *stored);
static void tcmd_abort(void);
static void tcmd_check(int elevel);
static void tcmd_build(StringInfo cmd, const char *template, const char *file,
					   const char *path);
static int	tcmd_run(const char *command);
static bool tcmd_pipe_ended(int fd);

const WalvaultTarget walvault_target_command = {
	.setting = "pg_walvault.archive_command",
	.archive = tcmd_archive,
	.abort = tcmd_abort,
	.check = tcmd_check,
	.cleanup = NULL,
	.stage = NULL,
};

/*
 * Run the archive command for file (found at path, relative to the data
 * directory).  Returns the size of the file, which counts as archived, and
 * as stored too: what the command writes is unknown.
 */
static uint64
tcmd_archive(const char *file, const char *path, uint64 *stored)
{
	StringInfoData cmd;
	struct stat st;
	int			rc;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));

	initStringInfo(&cmd);
	tcmd_build(&cmd, walvault_archive_command, file, path);
	ereport(DEBUG3,
			(errmsg_internal("executing archive command \"%s\"", cmd.data)));

	rc = tcmd_run(cmd.data);

	if (rc == 0)
	{
		/* what the command stores is its business */
		*stored = (uint64) st.st_size;
		return (uint64) st.st_size;
	}

	if (wait_result_is_signal(rc, SIGINT) ||
		wait_result_is_signal(rc, SIGQUIT) ||
		wait_result_is_signal(rc, SIGTERM))
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("pg_walvault.archive_command failed: %s", wait_result_to_str(rc)),
				 errdetail("The failed archive command was: %s", cmd.data)));

	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("pg_walvault.archive_command failed: %s", wait_result_to_str(rc)),
			 errdetail("The failed archive command was: %s", cmd.data)));
	return 0;					/* keep the compiler quiet */
}

/* Compression is the command's own business: say so if it is set. */
static void
tcmd_check(int elevel)
{
	if (walvault_compression.method != WALVAULT_CODEC_NONE)
		ereport(elevel,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pg_walvault.compression has no effect with pg_walvault.archive_command"),
				 errdetail("Files are handed to the command as they are in pg_wal."),
				 errhint("Compress in the command, or set pg_walvault.compression to off.")));
}

/*
 * Kill the command of a run that ended on an error (trapped by the
 * caller), so that no file is archived behind the back of a failure.  Its
 * children may live on, as those of a system() call interrupted by the
 * archiver's exit would.
 */
static void
tcmd_abort(void)
{
	if (tcmd_child > 0)
	{
		(void) kill(tcmd_child, SIGKILL);
		(void) waitpid(tcmd_child, NULL, 0);
		tcmd_child = 0;
	}
}

/*
 * Run command with /bin/sh as system() would, but wait for it on our latch
 * (see the file header).  Returns its wait status.
 */
static int
tcmd_run(const char *command)
{
	int			pipefd[2];
	int			status = 0;
	pid_t		pid;
	uint32		wait_event = walvault_wait_event(WALVAULT_WAIT_COMMAND);
	bool		latch_reset = false;
	long		recheck_ms = TCMD_RECHECK_MS;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create pipe for pg_walvault.archive_command: %m")));

	/* output of the command goes where ours goes: flush ours first */
	fflush(NULL);
	pid = fork();
	if (pid == 0)
	{
		/* the write end alone survives exec, in the command's processes */
		(void) fcntl(pipefd[1], F_SETFD, 0);
		execl("/bin/sh", "sh", "-c", command, (char *) NULL);
		_exit(127);
	}
	close(pipefd[1]);
	if (pid < 0)
	{
		close(pipefd[0]);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not fork pg_walvault.archive_command: %m")));
	}
	tcmd_child = pid;

	for (;;)
	{
		pid_t		rc = waitpid(pid, &status, WNOHANG);
		int			events;

		if (rc == pid)
			break;
		if (rc < 0 && errno != EINTR)
		{
			int			save_errno = errno;

			if (pipefd[0] >= 0)
				close(pipefd[0]);
			tcmd_child = 0;
			errno = save_errno;
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not wait for pg_walvault.archive_command: %m")));
		}
		if (pipefd[0] >= 0)
			events = WaitLatchOrSocket(MyLatch,
									   WL_LATCH_SET | WL_SOCKET_READABLE |
									   WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									   pipefd[0], TCMD_RECHECK_MS, wait_event);
		else
		{
			/* the command closed the pipe: sleep, longer each time */
			events = WaitLatch(MyLatch,
							   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							   recheck_ms, wait_event);
			recheck_ms = Min(recheck_ms * 2, TCMD_RECHECK_MS);
		}
		if ((events & WL_SOCKET_READABLE) && tcmd_pipe_ended(pipefd[0]))
		{
			close(pipefd[0]);
			pipefd[0] = -1;
			recheck_ms = TCMD_FIRST_RECHECK_MS;
		}
		ResetLatch(MyLatch);
		latch_reset = true;
		CHECK_FOR_INTERRUPTS();
	}
	tcmd_child = 0;
	if (pipefd[0] >= 0)
		close(pipefd[0]);

	/*
	 * A wakeup we consumed may have been meant for our caller's loop (a
	 * queued file, a new ready file for the archiver): give it back.
	 */
	if (latch_reset)
		SetLatch(MyLatch);
	return status;
}

/*
 * The pipe fd, which a wait reported readable: has it reached end-of-file?
 * Nothing of ours writes to it, but a command may (the descriptor is
 * inherited): what it wrote is read and dropped, so that the pipe is not
 * readable again for that.  The read does not block: the pipe was readable,
 * and we are its only reader.
 */
static bool
tcmd_pipe_ended(int fd)
{
	char		buf[512];
	ssize_t		n = read(fd, buf, sizeof(buf));

	/* an error other than EINTR cannot go away: stop watching too */
	return n == 0 || (n < 0 && errno != EINTR);
}

/*
 * Expand the placeholders of template into cmd.  A % followed by anything
 * else is kept as it is, as archive_command does.  file and path are names
 * the server gave (validated by the caller), so they need no quoting.
 */
static void
tcmd_build(StringInfo cmd, const char *template, const char *file,
		   const char *path)
{
	for (const char *sp = template; *sp != '\0'; sp++)
	{
		if (sp[0] == '%' && sp[1] == 'p')
		{
			appendStringInfoString(cmd, path);
			sp++;
		}
		else if (sp[0] == '%' && sp[1] == 'f')
		{
			appendStringInfoString(cmd, file);
			sp++;
		}
		else if (sp[0] == '%' && sp[1] == '%')
		{
			appendStringInfoChar(cmd, '%');
			sp++;
		}
		else
			appendStringInfoChar(cmd, *sp);
	}
}

/*-------------------------------------------------------------------------
 *
 * archive_command.c
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
 * too (system() ignores SIGINT and SIGQUIT while it waits): we exit FATAL,
 * as the server's archiver does, and the file goes back to the queue.
 *
 * src/archive_command.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lib/stringinfo.h"
#include "pgstat.h"
#include "utils/wait_event.h"

#include "pg_walvault.h"

static void acmd_build(StringInfo cmd, const char *template, const char *file,
					   const char *path);

/*
 * Run the archive command for file (found at path, relative to the data
 * directory).  Returns the size of the file, which counts as archived.
 */
uint64
walvault_run_archive_command(const char *file, const char *path)
{
	StringInfoData cmd;
	struct stat st;
	int			rc;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));

	initStringInfo(&cmd);
	acmd_build(&cmd, walvault_archive_command, file, path);
	ereport(DEBUG3,
			(errmsg_internal("executing archive command \"%s\"", cmd.data)));

	/* output of the command goes where ours goes: flush ours first */
	fflush(NULL);
	pgstat_report_wait_start(walvault_wait_event(WALVAULT_WAIT_COMMAND));
	rc = system(cmd.data);
	pgstat_report_wait_end();

	if (rc == 0)
		return (uint64) st.st_size;

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

/*
 * Expand the placeholders of template into cmd.  A % followed by anything
 * else is kept as it is, as archive_command does.  file and path are names
 * the server gave (validated by the caller), so they need no quoting.
 */
static void
acmd_build(StringInfo cmd, const char *template, const char *file,
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

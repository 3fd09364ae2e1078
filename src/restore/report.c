/*-------------------------------------------------------------------------
 *
 * report.c
 *	  Messages and exit statuses of pg_walvault_restore.
 *
 * Every error ends the process: the program restores one file, and a
 * prefetch worker is a process of its own for the same reason, so that an
 * error anywhere in the fetch path needs no unwinding.  What decides the
 * exit status is the class of the error:
 *
 *	usage and content errors (a corrupt file, a segment of another cluster)
 *	always exit with WV_EXIT_FATAL: the server stops recovery.  Exit 1 here
 *	would make it take the corrupt file for the end of the archive, finish
 *	recovery and promote, silently dropping every later transaction.
 *
 *	I/O errors exit with WV_EXIT_FATAL too, unless --retry-io-errors was
 *	given and the data directory is a standby's: then with 1, "not
 *	available", and the standby asks again later.  Never outside standby
 *	mode, where 1 ends recovery.
 *
 * Before exiting on an error, and on SIGTERM, SIGINT, SIGQUIT and SIGHUP (the
 * postmaster signals the startup process's process group at shutdown, which
 * includes us), the temporary file being written is removed, so that
 * nothing half-written is left beside the destination.  A SIGKILL leaves it;
 * it has a name nobody reads.
 *
 * src/restore/report.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "restore.h"

static bool verbose = false;
static bool io_errors_not_available = false;
static const char *error_hint = NULL;

/* Temporary file to remove if we fail; valid while temp_set is set */
static char temp_path[WV_MAXPATH];
static volatile sig_atomic_t temp_set = 0;

static void report_remove_temp(void);
static void report_signal_handler(int signo);
static void report_line(const char *level, const char *fmt, va_list ap)
			WV_PRINTF_ATTR(2, 0);

void
wv_set_verbose(bool on)
{
	verbose = on;
}

bool
wv_is_verbose(void)
{
	return verbose;
}

void
wv_set_io_errors_not_available(bool on)
{
	io_errors_not_available = on;
}

/* Print "pg_walvault_restore: <level>: <message>" on stderr. */
static void
report_line(const char *level, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s%s", PROGRAM_NAME, level, level[0] ? ": " : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* A progress message, only with -v. */
void
wv_verbose(const char *fmt,...)
{
	va_list		ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	report_line("", fmt, ap);
	va_end(ap);
}

void
wv_warning(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	report_line("warning", fmt, ap);
	va_end(ap);
}

/*
 * The hint the next wv_error() prints after its message (hint must stay
 * valid until then).
 */
void
wv_set_error_hint(const char *hint)
{
	error_hint = hint;
}

/*
 * Report an error and exit, with the status its class gives (see the file
 * header).
 */
void
wv_error(WvErrorClass cls, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	report_line("error", fmt, ap);
	va_end(ap);
	if (error_hint != NULL)
		fprintf(stderr, "%s: hint: %s\n", PROGRAM_NAME, error_hint);

	report_remove_temp();

	if (cls == WV_ERROR_IO && io_errors_not_available)
	{
		fprintf(stderr, "%s: detail: reported as not available (--retry-io-errors in standby mode): the server will ask again\n",
				PROGRAM_NAME);
		exit(WV_EXIT_NOT_FOUND);
	}
	exit(WV_EXIT_FATAL);
}

/*
 * A command-line problem, with a hint pointing at --help.  Fatal: a
 * restore_command that cannot work must not look like the end of the
 * archive.
 */
void
wv_usage_error(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	report_line("error", fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: hint: Try \"%s --help\" for more information.\n",
			PROGRAM_NAME, PROGRAM_NAME);
	exit(WV_EXIT_FATAL);
}

/*
 * Remember the temporary file being written, to remove it on an error or a
 * signal.  The path is copied before the flag is set, so that a signal
 * handler never sees half a path.
 */
void
wv_temp_set(const char *path)
{
	temp_set = 0;
	snprintf(temp_path, sizeof(temp_path), "%s", path);
	temp_set = 1;
}

void
wv_temp_forget(void)
{
	temp_set = 0;
}

static void
report_remove_temp(void)
{
	if (temp_set)
	{
		temp_set = 0;
		if (unlink(temp_path) != 0 && errno != ENOENT)
			fprintf(stderr, "%s: warning: could not remove file \"%s\": %s\n",
					PROGRAM_NAME, temp_path, strerror(errno));
	}
}

/*
 * Remove the temporary file, then die of the same signal, so that whoever
 * waits for us (the server, through the shell) sees what happened.
 * unlink(), signal() and raise() are async-signal-safe.
 */
static void
report_signal_handler(int signo)
{
	int			save_errno = errno;

	if (temp_set)
	{
		temp_set = 0;
		(void) unlink(temp_path);
	}
	signal(signo, SIG_DFL);
	raise(signo);
	errno = save_errno;
}

void
wv_install_signal_cleanup(void)
{
	signal(SIGTERM, report_signal_handler);
	signal(SIGINT, report_signal_handler);
	signal(SIGQUIT, report_signal_handler);
	signal(SIGHUP, report_signal_handler);
}

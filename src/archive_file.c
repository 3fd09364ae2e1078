/*-------------------------------------------------------------------------
 *
 * archive_file.c
 *	  Archive one file, whoever asks: an archive worker, or the archiver
 *	  itself when no worker can; into the archive directory, or through the
 *	  archive command.
 *
 * The same function serves both so that a file archived by the fallback is
 * archived exactly as a worker would.  It traps every ERROR: in PostgreSQL
 * 15 an ERROR escaping an archive module kills the archiver, and in a worker
 * it would end the process, while one bad file must only count as one
 * failure.  The error is logged, counted and shown in the views, and the
 * caller reports failure; the server keeps the WAL file and asks again.
 *
 * src/archive_file.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/xlog_internal.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"

#include "pg_walvault.h"
#include "wal_names.h"

static MemoryContext afile_context = NULL;

static TimestampTz afile_ready_since(const char *file);

/*
 * Is file a name the server gives to an archive module?  Only those are
 * ever used to build a path or a command (wal_names.c).
 */
bool
walvault_is_archivable_name(const char *file)
{
	return walvault_classify_name(file) != WALVAULT_FILE_INVALID;
}

/*
 * Archive file (found at path, relative to the data directory) into the
 * archive directory.  Returns true once it is durable there; false, with the
 * error logged and counted, otherwise.  slot (may be NULL) is the caller's
 * process slot, for the views.
 */
bool
walvault_archive_file_guarded(const char *file, const char *path,
							  WalvaultSlot *slot)
{
	MemoryContext oldcontext;
	TimestampTz ready_since;
	volatile uint64 bytes = 0;
	uint64		stored = 0;
	volatile bool ok = false;

	if (afile_context == NULL)
		afile_context = AllocSetContextCreate(TopMemoryContext,
											  "pg_walvault file",
											  ALLOCSET_DEFAULT_SIZES);
	oldcontext = MemoryContextSwitchTo(afile_context);

	walvault_slot_set_state(slot, WALVAULT_SLOT_BUSY, file);
	ready_since = afile_ready_since(file);

	PG_TRY();
	{
		if (!walvault_is_archivable_name(file))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("\"%s\" is not the name of a WAL file", file),
					 errdetail("pg_walvault archives only WAL segments, timeline history files, backup history files and partial segments.")));
		switch (walvault_archive_target())
		{
			case WALVAULT_TARGET_NONE:
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("neither pg_walvault.archive_directory nor pg_walvault.archive_command is set"),
						 errhint("Set one of them in postgresql.conf and reload the server.")));
				break;
			case WALVAULT_TARGET_BOTH:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("both pg_walvault.archive_directory and pg_walvault.archive_command are set"),
						 errhint("Set only one of them in postgresql.conf and reload the server.")));
				break;
			case WALVAULT_TARGET_DIRECTORY:
				bytes = walvault_copy_to_directory(file, path,
												   walvault_archive_directory,
												   &stored);
				break;
			case WALVAULT_TARGET_COMMAND:
				/* what the command stores is its business */
				bytes = stored = walvault_run_archive_command(file, path);
				break;
		}
		ok = true;
	}
	PG_CATCH();
	{
		walvault_trap_error(slot, file, afile_context);
	}
	PG_END_TRY();

	if (ok)
		walvault_count_success(slot, file, bytes, stored, ready_since);

	walvault_slot_set_state(slot, WALVAULT_SLOT_IDLE, NULL);
	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(afile_context);
	return ok;
}

/*
 * In a PG_CATCH block: log the error, undo what the failed code may have
 * left behind (a lock, a wait event, open files, a temporary file, a
 * running command), and count a failure of file, shown in the views.
 * context is where the error data may be copied; it is current afterwards.
 */
void
walvault_trap_error(WalvaultSlot *slot, const char *file,
					MemoryContext context)
{
	ErrorData  *edata;

	HOLD_INTERRUPTS();
	LWLockReleaseAll();
	pgstat_report_wait_end();
	MemoryContextSwitchTo(context);
	edata = CopyErrorData();
	EmitErrorReport();
	FlushErrorState();

	walvault_copy_abort();
	walvault_command_abort();
	AtEOSubXact_Files(false, InvalidSubTransactionId, InvalidSubTransactionId);

	walvault_count_failure(slot, file, edata->message);
	FreeErrorData(edata);
	RESUME_INTERRUPTS();
}

/* Where files go, from pg_walvault.archive_directory and archive_command. */
WalvaultTarget
walvault_archive_target(void)
{
	bool		dir = (walvault_archive_directory != NULL &&
					   walvault_archive_directory[0] != '\0');
	bool		cmd = (walvault_archive_command != NULL &&
					   walvault_archive_command[0] != '\0');

	if (dir && cmd)
		return WALVAULT_TARGET_BOTH;
	if (dir)
		return WALVAULT_TARGET_DIRECTORY;
	if (cmd)
		return WALVAULT_TARGET_COMMAND;
	return WALVAULT_TARGET_NONE;
}

/*
 * A hash of where files go.  A file a worker archived while the setting
 * changed is archived again to the new place (see queue.c).
 */
uint32
walvault_target_hash(void)
{
	uint32		h;

	h = hash_bytes((const unsigned char *) walvault_archive_directory,
				   strlen(walvault_archive_directory));
	return hash_combine(h,
						hash_bytes((const unsigned char *) walvault_archive_command,
								   strlen(walvault_archive_command)));
}

/*
 * Say at elevel what is wrong with where files would go now: both places
 * set, an unusable directory, or compression that cannot apply.  Called at
 * start and at every reload, so that a DBA learns of it before the first
 * file fails.
 */
void
walvault_check_target(int elevel)
{
	switch (walvault_archive_target())
	{
		case WALVAULT_TARGET_BOTH:
			ereport(elevel,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("both pg_walvault.archive_directory and pg_walvault.archive_command are set"),
					 errdetail("No file is archived until one of them is removed; WAL files stay in pg_wal."),
					 errhint("Set only one of them in postgresql.conf and reload the server.")));
			break;
		case WALVAULT_TARGET_DIRECTORY:
			(void) walvault_directory_usable(walvault_archive_directory, elevel);
			break;
		case WALVAULT_TARGET_COMMAND:
			if (walvault_compression.method != WALVAULT_CODEC_NONE)
				ereport(elevel,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("pg_walvault.compression has no effect with pg_walvault.archive_command"),
						 errdetail("Files are handed to the command as they are in pg_wal."),
						 errhint("Compress in the command, or set pg_walvault.compression to off.")));
			break;
		case WALVAULT_TARGET_NONE:
			break;
	}
}

/* When did the server mark file ready?  0 if we cannot tell. */
static TimestampTz
afile_ready_since(const char *file)
{
	char		status_path[MAXPGPATH];
	struct stat st;

	if (!walvault_is_archivable_name(file))
		return 0;
	snprintf(status_path, sizeof(status_path), XLOGDIR "/archive_status/%s.ready",
			 file);
	if (stat(status_path, &st) != 0)
		return 0;
	return time_t_to_timestamptz(st.st_mtim.tv_sec) +
		st.st_mtim.tv_nsec / 1000;
}

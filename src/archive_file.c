/*-------------------------------------------------------------------------
 *
 * archive_file.c
 *	  Archive one file, whoever asks: an archive worker, or the archiver
 *	  itself when no worker can.
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
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "pg_walvault.h"

static MemoryContext afile_context = NULL;

static TimestampTz afile_ready_since(const char *file);

/*
 * Is file a name the server gives to an archive module?  Only those are
 * ever used to build a path.
 */
bool
walvault_is_archivable_name(const char *file)
{
	if (strlen(file) >= WALVAULT_FNAME_LEN)
		return false;
	return IsXLogFileName(file) ||
		IsTLHistoryFileName(file) ||
		IsBackupHistoryFileName(file) ||
		IsPartialXLogFileName(file);
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
		if (walvault_archive_directory == NULL ||
			walvault_archive_directory[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pg_walvault.archive_directory is not set"),
					 errhint("Set pg_walvault.archive_directory in postgresql.conf and reload the server.")));

		bytes = walvault_copy_to_directory(file, path,
										   walvault_archive_directory,
										   &stored);
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(afile_context);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();

		walvault_copy_abort();
		/* close files the copy left open */
		AtEOSubXact_Files(false, InvalidSubTransactionId,
						  InvalidSubTransactionId);

		walvault_count_failure(slot, file, edata->message);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();

	if (ok)
		walvault_count_success(slot, file, bytes, stored, ready_since);

	walvault_slot_set_state(slot, WALVAULT_SLOT_IDLE, NULL);
	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(afile_context);
	return ok;
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

/*-------------------------------------------------------------------------
 *
 * archive_file.c
 *	  Archive one file, whoever asks: an archive worker, or the archiver
 *	  itself when no worker can; to whichever archive target is set.
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
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/lwlock.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pg_walvault.h"
#include "wal_names.h"

static MemoryContext afile_context = NULL;

static TimestampTz afile_ready_since(const char *file);
static void afile_target_error(int elevel, int nset);
static ErrorData *afile_recover(MemoryContext context, bool log);
static MemoryContext afile_get_context(void);

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
	const WalvaultTarget *target;
	int			nset;

	oldcontext = MemoryContextSwitchTo(afile_get_context());

	walvault_slot_set_state(slot, WALVAULT_SLOT_BUSY, file);
	ready_since = afile_ready_since(file);

	PG_TRY();
	{
		if (!walvault_is_archivable_name(file))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("\"%s\" is not the name of a WAL file", file),
					 errdetail("pg_walvault archives only WAL segments, timeline history files, backup history files and partial segments.")));
		target = walvault_archive_target(&nset);
		if (target == NULL)
			afile_target_error(ERROR, nset);
		bytes = target->archive(file, path, &stored);
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
 * Archive files[] together where the target can share work between them
 * (its stage callback), before the caller archives each of them with
 * walvault_archive_file_guarded().  An error here is logged, but counted as
 * no file's failure: what it left undone is done file by file, which meets
 * the same problem and counts it (or, where the target cannot tell whether
 * the error left a file archived, fails the file).  The slot stays busy:
 * the caller archives the files right after.
 */
void
walvault_archive_stage(WalvaultFileName *files, int nfiles,
					   WalvaultSlot *slot)
{
	const WalvaultTarget *target;
	MemoryContext oldcontext;
	int			nset;

	target = walvault_archive_target(&nset);
	if (target == NULL || target->stage == NULL)
		return;
	if (nfiles < 2)
	{
		/* nothing to share: the target only forgets the last batch */
		target->stage(files, nfiles);
		return;
	}

	oldcontext = MemoryContextSwitchTo(afile_get_context());
	walvault_slot_set_state(slot, WALVAULT_SLOT_BUSY, files[0]);

	PG_TRY();
	{
		target->stage(files, nfiles);
	}
	PG_CATCH();
	{
		ErrorData  *edata = afile_recover(afile_context, false);

		ereport(LOG,
				(errcode(edata->sqlerrcode),
				 errmsg("pg_walvault: could not archive %d files together: %s",
						nfiles, edata->message),
				 errdetail("What was left undone is done one file at a time.")));
		FreeErrorData(edata);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();

	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(afile_context);
}

/*
 * How many files a worker takes at once: a batch where the target can
 * archive files together, one file otherwise (taking more would only make
 * the others wait for this worker, and delay its exit).  A batch holds no
 * more than WALVAULT_BATCH_BYTES of WAL: what it saves is a cost per file,
 * which only counts with small segments, while a large batch of large
 * segments would only make the archiver wait longer for the first of them.
 */
int
walvault_archive_batch_max(void)
{
	const WalvaultTarget *target;
	int			nset;

	target = walvault_archive_target(&nset);
	if (target == NULL || target->stage == NULL)
		return 1;
	return Max(1, Min(walvault_batch_size,
					  WALVAULT_BATCH_BYTES / wal_segment_size));
}

/*
 * In a PG_CATCH block: log the error, undo what the failed code may have
 * left behind (afile_recover()), and count a failure of file, shown in the
 * views.  context is where the error data may be copied; it is current
 * afterwards.
 */
void
walvault_trap_error(WalvaultSlot *slot, const char *file,
					MemoryContext context)
{
	ErrorData  *edata = afile_recover(context, true);

	walvault_count_failure(slot, file, edata->message);
	FreeErrorData(edata);
	RESUME_INTERRUPTS();
}

/*
 * The context archiving works in, reset after each file or batch; made on
 * first use.
 */
static MemoryContext
afile_get_context(void)
{
	if (afile_context == NULL)
		afile_context = AllocSetContextCreate(TopMemoryContext,
											  "pg_walvault file",
											  ALLOCSET_DEFAULT_SIZES);
	return afile_context;
}

/*
 * In a PG_CATCH block: take the error (logged if log), and undo what the
 * failed code may have left behind (a lock, a wait event, open files, a
 * temporary file, a running command).  Returns the error's data, copied
 * into context, which is current afterwards; interrupts are held until the
 * caller resumes them.
 */
static ErrorData *
afile_recover(MemoryContext context, bool log)
{
	ErrorData  *edata;

	HOLD_INTERRUPTS();
	LWLockReleaseAll();
	pgstat_report_wait_end();
	MemoryContextSwitchTo(context);
	edata = CopyErrorData();
	if (log)
		EmitErrorReport();
	FlushErrorState();

	walvault_target_abort();
	AtEOSubXact_Files(false, InvalidSubTransactionId, InvalidSubTransactionId);
	return edata;
}

/*
 * The targets, with the setting that selects each.  This is the one place
 * that lists the kinds of target.
 */
static const WalvaultTarget *const afile_targets[] = {
	&walvault_target_directory,
	&walvault_target_command,
	&walvault_target_s3,
};

/* Is the string setting of a target set? */
static bool
afile_is_set(const WalvaultTarget *target)
{
	const char *value = GetConfigOption(target->setting, true, false);

	return value != NULL && value[0] != '\0';
}

/*
 * Where files go: the target whose setting is set, if exactly one is;
 * NULL otherwise.  *nset gets how many are set.
 */
const WalvaultTarget *
walvault_archive_target(int *nset)
{
	const WalvaultTarget *chosen = NULL;

	*nset = 0;
	for (int i = 0; i < lengthof(afile_targets); i++)
	{
		if (afile_is_set(afile_targets[i]))
		{
			chosen = afile_targets[i];
			(*nset)++;
		}
	}
	return *nset == 1 ? chosen : NULL;
}

/*
 * Report at elevel that no target, or more than one, is set (nset).  At
 * ERROR this does not return.
 */
static void
afile_target_error(int elevel, int nset)
{
	const char *names[lengthof(afile_targets)];
	int			n = 0;

	if (nset == 0)
		ereport(elevel,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("none of pg_walvault.archive_directory, pg_walvault.archive_command and pg_walvault.archive_url is set"),
				 errhint("Set one of them in postgresql.conf and reload the server.")));
	for (int i = 0; i < lengthof(afile_targets); i++)
		if (afile_is_set(afile_targets[i]))
			names[n++] = afile_targets[i]->setting;
	if (n == 2)
		ereport(elevel,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("both %s and %s are set", names[0], names[1]),
				 errdetail("No file is archived until only one archive target is set; WAL files stay in pg_wal."),
				 errhint("Set only one of them in postgresql.conf and reload the server.")));
	else
		ereport(elevel,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s, %s and %s are all set", names[0], names[1], names[2]),
				 errdetail("No file is archived until only one archive target is set; WAL files stay in pg_wal."),
				 errhint("Set only one of them in postgresql.conf and reload the server.")));
}

/*
 * A hash of where files go.  A file a worker archived while the setting
 * changed is archived again to the new place (see queue.c).
 */
uint32
walvault_target_hash(void)
{
	const char *where[] = {
		walvault_archive_directory, walvault_archive_command,
		walvault_archive_url, walvault_s3_endpoint
	};
	uint32		h = 0;

	for (int i = 0; i < lengthof(where); i++)
		h = hash_combine(h, hash_bytes((const unsigned char *) where[i],
									   strlen(where[i])));
	return h;
}

/*
 * Say at elevel what is wrong with where files would go now: more than one
 * target set, or what the target itself finds wrong with its settings.
 * Called at start and at every reload, so that a DBA learns of it before
 * the first file fails.
 */
void
walvault_check_target(int elevel)
{
	const WalvaultTarget *target;
	int			nset;

	target = walvault_archive_target(&nset);
	if (target != NULL)
		target->check(elevel);
	else if (nset > 1)
		afile_target_error(elevel, nset);
}

/*
 * Undo what a failed archive left behind, whatever the target was: the
 * setting may have changed since the attempt began.
 */
void
walvault_target_abort(void)
{
	for (int i = 0; i < lengthof(afile_targets); i++)
		afile_targets[i]->abort();
	walvault_compare_abort();
}

/* Remove what dead processes left behind in the current target. */
void
walvault_target_cleanup(void)
{
	const WalvaultTarget *target;
	int			nset;

	target = walvault_archive_target(&nset);
	if (target != NULL && target->cleanup != NULL)
		target->cleanup();
}

/*
 * Read up to len bytes of the file open as fd (named path, for messages)
 * into buf, fewer only at its end, under wait_event; a failure is an
 * ERROR.  Every target reads WAL files with it.
 */
size_t
walvault_read_file(int fd, const char *path, char *buf, size_t len,
				   uint32 wait_event)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		rc;

		pgstat_report_wait_start(wait_event);
		rc = read(fd, buf + done, len - done);
		pgstat_report_wait_end();
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", path)));
		if (rc == 0)
			break;
		done += rc;
	}
	return done;
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

/*-------------------------------------------------------------------------
 *
 * archive_status.c
 *	  The files the server has marked ready for archiving.
 *
 * The server marks a file ready by creating pg_wal/archive_status/FILE.ready
 * and done by renaming that to FILE.done; its archiver lists the directory
 * to find the next files.  We list it the same way for read-ahead (the
 * files the archiver will ask for next) and for the statistics (how many
 * are waiting), through this one function, which keeps only the names the
 * server itself would archive (wal_names.c): anything else found there was
 * not made by the server, and never reaches a path or a command of ours.
 *
 * The archiver also marks files done here that the workers archived ahead
 * (walvault_mark_done): the server's archiver looks for each file's .ready
 * again before asking for it, and skips a file whose .ready is gone: its
 * code expects an archive command or module to have marked later files done
 * already.  Marking a batch costs a rename per file and one fsync of the
 * directory, where the server's own marking costs three fsyncs per file in
 * its one serial process.
 *
 * src/archive_status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "storage/fd.h"

#include "pg_walvault.h"
#include "wal_names.h"

#define ASTATUS_DIR		XLOGDIR "/archive_status"
#define ASTATUS_SUFFIX	".ready"
#define ASTATUS_DONE	".done"

/* qsort/bsearch comparator for arrays of file names */
int
walvault_name_cmp(const void *a, const void *b)
{
	return strcmp((const char *) a, (const char *) b);
}

/*
 * The names of the files marked ready, sorted by name, in memory allocated
 * in the current memory context; *nready gets their number.
 */
WalvaultFileName *
walvault_ready_files(int *nready)
{
	WalvaultFileName *ready;
	int			n = 0;
	int			max = 64;
	DIR		   *dir;
	struct dirent *de;

	ready = palloc(sizeof(WalvaultFileName) * max);
	dir = AllocateDir(ASTATUS_DIR);
	while ((de = ReadDir(dir, ASTATUS_DIR)) != NULL)
	{
		size_t		len = strlen(de->d_name);
		size_t		namelen = len - strlen(ASTATUS_SUFFIX);

		CHECK_FOR_INTERRUPTS();
		if (len <= strlen(ASTATUS_SUFFIX) || namelen >= WALVAULT_FNAME_LEN ||
			strcmp(de->d_name + namelen, ASTATUS_SUFFIX) != 0)
			continue;
		if (n == max)
		{
			max *= 2;
			ready = repalloc(ready, sizeof(WalvaultFileName) * max);
		}
		memcpy(ready[n], de->d_name, namelen);
		ready[n][namelen] = '\0';
		if (walvault_classify_name(ready[n]) != WALVAULT_FILE_INVALID)
			n++;
	}
	FreeDir(dir);

	qsort(ready, n, sizeof(WalvaultFileName), walvault_name_cmp);
	*nready = n;
	return ready;
}

/*
 * Mark files done, as the server does once a file is archived: rename each
 * .ready to .done, then make the renames durable with one fsync of the
 * directory.  Only for files that are durable in the archive.  A file whose
 * .ready is gone (the server marked it, or it is no longer there) is left
 * alone.  Failures are WARNINGs, as in the server's own marking: a file left
 * ready is asked for again and found in the archive, and a .done lost in a
 * crash only means that the file is archived again.  Returns how many files
 * were marked.
 */
int
walvault_mark_done(WalvaultFileName *files, int nfiles)
{
	int			marked = 0;

	for (int i = 0; i < nfiles; i++)
	{
		char		ready[MAXPGPATH];
		char		done[MAXPGPATH];

		snprintf(ready, sizeof(ready), "%s/%s%s", ASTATUS_DIR, files[i],
				 ASTATUS_SUFFIX);
		snprintf(done, sizeof(done), "%s/%s%s", ASTATUS_DIR, files[i],
				 ASTATUS_DONE);
		if (rename(ready, done) == 0)
			marked++;
		else if (errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not rename file \"%s\" to \"%s\": %m",
							ready, done),
					 errdetail("The server will ask for the file again; it is archived already.")));
	}
	if (marked > 0)
		(void) fsync_fname_ext(ASTATUS_DIR, true, false, WARNING);
	return marked;
}

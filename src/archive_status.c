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

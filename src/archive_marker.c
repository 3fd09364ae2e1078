/*-------------------------------------------------------------------------
 *
 * archive_marker.c
 *	  The marker that says "this is the WAL archive of database system N".
 *
 * pg_walvault_restore answers "not in the archive" (exit 1) when a file is
 * under none of its names, and recovery takes that for the end of the WAL.
 * An archive that is not there at all looks the same: a mount point with
 * nothing mounted is an empty directory, a mistyped prefix an empty list.
 * So the archive carries a marker, written here the first time a process
 * archives into it, and the restore program must find it before it may say
 * "not found" (restore/marker.c).
 *
 * The marker holds the system identifier, which makes it a guard in this
 * direction too: a server never archives into the archive of another
 * system.  After pg_upgrade or a new initdb pointed at the old place, the
 * two systems' WAL would share names; the second's files would be judged
 * against the first's and fail one by one, with a less clear message.
 *
 * A marker is written once and never changed: in a directory it is written
 * under a temporary name, flushed, linked into place (link() never replaces
 * an existing name, so two workers creating it at once end with one), and
 * the directory flushed; in an object store it is uploaded with
 * If-None-Match.  Each process checks it once per archive location, the
 * first time it archives there, before the first file: a marker removed
 * afterwards is not written again behind the DBA's back, and the restore
 * program reports it missing, which is the point.
 *
 * An archive_command target has no marker: where its command puts files is
 * not ours to know.
 *
 * src/archive_marker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_walvault.h"
#include "wal_names.h"

/* the archive location whose marker this process has seen, or NULL */
static char *amarker_checked = NULL;

static char *amarker_location_key(const WalvaultTarget *target);
static void amarker_content(char *buf, size_t size);
static void amarker_judge(const char *content, size_t len,
						  const char *where);
static void amarker_directory(const char *dir, const char *content);
static bool amarker_read_file(const char *path, char *buf, size_t size,
							  size_t *len);

/*
 * Make sure the archive target archives into carries this system's marker:
 * write it if it has none, raise an ERROR if it carries another system's or
 * one that cannot be read.  Cheap after the first call for a location.
 * file is the WAL file about to be archived, for messages: a transfer of
 * the marker cut short is one of that file.
 */
void
walvault_marker_ensure(const WalvaultTarget *target, const char *file)
{
	char	   *key;
	char		content[WALVAULT_MARKER_MAX];

	key = amarker_location_key(target);
	if (key == NULL)
		return;
	if (amarker_checked != NULL && strcmp(amarker_checked, key) == 0)
	{
		pfree(key);
		return;
	}

	amarker_content(content, sizeof(content));
	if (target == &walvault_target_directory)
		amarker_directory(walvault_archive_directory, content);
	else
	{
		char		existing[WALVAULT_MARKER_MAX + 1];
		size_t		len;
		char	   *where;

		if (!walvault_s3_marker_create(content, existing, sizeof(existing),
									   &len, &where, file))
			amarker_judge(existing, len, where);
	}

	if (amarker_checked != NULL)
		pfree(amarker_checked);
	amarker_checked = MemoryContextStrdup(TopMemoryContext, key);
	pfree(key);
}

/*
 * Where target archives, as a string that changes whenever the place does;
 * NULL for a target without a marker.
 */
static char *
amarker_location_key(const WalvaultTarget *target)
{
	if (target == &walvault_target_directory)
		return psprintf("directory:%s", walvault_archive_directory);
	if (target == &walvault_target_s3)
		return psprintf("s3:%s|%s", walvault_archive_url,
						walvault_s3_endpoint);
	return NULL;
}

/* This system's marker */
static void
amarker_content(char *buf, size_t size)
{
	pg_time_t	now = (pg_time_t) time(NULL);
	char		created[128];

	pg_strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S UTC",
				pg_gmtime(&now));
	walvault_marker_format(buf, size, GetSystemIdentifier(), created);
}

/*
 * An existing marker (len bytes of content, found at where) must be this
 * system's.
 */
static void
amarker_judge(const char *content, size_t len, const char *where)
{
	uint64_t	sysid;

	if (!walvault_marker_parse(content, len, &sysid))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("archive marker \"%s\" is not valid", where),
				 errdetail("It must hold a line \"system_identifier = N\" and at most %d bytes.",
						   WALVAULT_MARKER_MAX),
				 errhint("If the archive holds only this database system's WAL, write the line with this system's identifier (%llu) into it.",
						 (unsigned long long) GetSystemIdentifier())));
	if (sysid != GetSystemIdentifier())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("archive marker \"%s\" belongs to another database system",
						where),
				 errdetail("Its marker names system identifier %llu; this server's is %llu.",
						   (unsigned long long) sysid,
						   (unsigned long long) GetSystemIdentifier()),
				 errhint("Archive each database system to a location of its own, for instance a new directory after pg_upgrade.")));
}

/* The marker of an archive directory: judge it, or write it. */
static void
amarker_directory(const char *dir, const char *content)
{
	char		path[MAXPGPATH];
	char		temp[MAXPGPATH];
	char		existing[WALVAULT_MARKER_MAX + 1];
	size_t		len;
	int			fd;
	size_t		content_len = strlen(content);

	snprintf(path, sizeof(path), "%s/%s", dir, WALVAULT_MARKER_NAME);
	if (amarker_read_file(path, existing, sizeof(existing), &len))
	{
		amarker_judge(existing, len, path);
		return;
	}

	/*
	 * Our process's own temporary name: one left by a process of the same
	 * PID that died is ours to remove.  O_EXCL and O_NOFOLLOW: whatever is
	 * planted there is never written through.
	 */
	snprintf(temp, sizeof(temp), "%s/.%s.%d.tmp", dir, WALVAULT_MARKER_NAME,
			 MyProcPid);
	if (unlink(temp) != 0 && errno != ENOENT)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", temp)));
	fd = OpenTransientFile(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
						   PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", temp)));
	errno = 0;
	if (write(fd, content, content_len) != (ssize_t) content_len)
	{
		int			save_errno = errno ? errno : ENOSPC;

		(void) CloseTransientFile(fd);
		(void) unlink(temp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", temp)));
	}
	if (pg_fsync(fd) != 0)
	{
		int			save_errno = errno;

		(void) CloseTransientFile(fd);
		(void) unlink(temp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", temp)));
	}
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", temp)));

	/* link() never replaces: of two workers at once, one marker wins */
	if (link(temp, path) != 0 && errno != EEXIST)
	{
		int			save_errno = errno;

		(void) unlink(temp);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not link file \"%s\" to \"%s\": %m",
						temp, path)));
	}
	if (unlink(temp) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", temp)));
	/* the name must be durable before any file archived after it */
	(void) fsync_fname_ext(dir, true, false, ERROR);

	/* whoever won, it must be ours now */
	if (!amarker_read_file(path, existing, sizeof(existing), &len))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("archive marker \"%s\" disappeared as it was written",
						path)));
	amarker_judge(existing, len, path);
}

/*
 * Read the file at path into buf (size bytes at most: a larger file reads
 * as size bytes, which the parser refuses).  false if there is no such
 * file; any other failure is an ERROR.
 */
static bool
amarker_read_file(const char *path, char *buf, size_t size, size_t *len)
{
	int			fd;
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open archive marker \"%s\": %m", path)));
	}
	*len = 0;
	while (*len < size)
	{
		n = read(fd, buf + *len, size - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			int			save_errno = errno;

			(void) CloseTransientFile(fd);
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read archive marker \"%s\": %m",
							path)));
		}
		if (n == 0)
			break;
		*len += (size_t) n;
	}
	(void) CloseTransientFile(fd);
	return true;
}

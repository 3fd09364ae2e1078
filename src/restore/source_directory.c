/*-------------------------------------------------------------------------
 *
 * source_directory.c
 *	  Restore from an archive directory (-d): the source of fetch.c that
 *	  reads files.
 *
 * The archive workers' target_directory.c stores each file as
 * DIR/<name>, or compressed as DIR/<name>.zst, .lz4 or .gz.  find() opens
 * the first of those names that exists, and keeps the descriptor: read()
 * copies from the very file that was found, so a file renamed over the name
 * in between (another archiver finishing the same segment) can never mix
 * two files.
 *
 * Only ENOENT means "try the next name".  Any other failure to open a name,
 * such as a permission problem or a symlink loop, is an I/O error, never
 * the end of the archive; so is an archive directory that cannot be
 * reached, checked before every lookup (a mount that went away shows
 * there).  An entry that is not a regular file is refused as content.
 *
 * src/restore/source_directory.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "restore.h"

#define DIRSRC_BUFFER_SIZE	(128 * 1024)

typedef struct DirectorySource
{
	RestoreSource source;		/* first: the interface */
	const char *dir;
	char		description[WV_MAXPATH + 32];
	int			fd;				/* the file find() found, or -1 */
} DirectorySource;

static unsigned char dirsrc_buffer[DIRSRC_BUFFER_SIZE];

static const char *dirsrc_describe(RestoreSource *source);
static bool dirsrc_find(RestoreSource *source, const char *file_name,
						WvStoredFile *file);
static bool dirsrc_read(RestoreSource *source, const WvStoredFile *file,
						const WvContentSink *sink);

static const char *
dirsrc_describe(RestoreSource *source)
{
	return ((DirectorySource *) source)->description;
}

static bool
dirsrc_find(RestoreSource *source, const char *file_name, WvStoredFile *file)
{
	DirectorySource *ds = (DirectorySource *) source;
	struct stat st;

	if (stat(ds->dir, &st) != 0)
		wv_error(WV_ERROR_IO, "could not access archive directory \"%s\": %s",
				 ds->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		wv_error(WV_ERROR_USAGE, "archive directory \"%s\" is not a directory",
				 ds->dir);

	for (int i = 0; i < WALVAULT_CODEC_LOOKUP_COUNT; i++)
	{
		WalvaultCodecMethod method = walvault_codec_lookup_order[i];
		int			rc;

		snprintf(file->name, sizeof(file->name), "%s%s",
				 file_name, walvault_codec_suffix(method));
		rc = snprintf(file->location, sizeof(file->location), "%s/%s",
					  ds->dir, file->name);
		if (rc < 0 || (size_t) rc >= sizeof(file->location))
			wv_error(WV_ERROR_USAGE, "archive directory path \"%s\" is too long",
					 ds->dir);

		ds->fd = open(file->location, O_RDONLY | O_CLOEXEC);
		if (ds->fd < 0)
		{
			/*
			 * Only a missing file means "try the next name".  Anything
			 * else, such as a permission problem, must not be mistaken for
			 * the end of the archive.
			 */
			if (errno != ENOENT)
				wv_error(WV_ERROR_IO, "could not open file \"%s\": %s",
						 file->location, strerror(errno));
			continue;
		}

		if (fstat(ds->fd, &st) != 0)
			wv_error(WV_ERROR_IO, "could not stat file \"%s\": %s",
					 file->location, strerror(errno));
		if (!S_ISREG(st.st_mode))
			wv_error(WV_ERROR_CONTENT, "archive file \"%s\" is not a regular file",
					 file->location);
		file->method = method;
		file->size = (uint64_t) st.st_size;
		return true;
	}
	return false;
}

static bool
dirsrc_read(RestoreSource *source, const WvStoredFile *file,
			const WvContentSink *sink)
{
	DirectorySource *ds = (DirectorySource *) source;

	for (;;)
	{
		ssize_t		rc = read(ds->fd, dirsrc_buffer, sizeof(dirsrc_buffer));

		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			wv_error(WV_ERROR_IO, "could not read file \"%s\": %s",
					 file->location, strerror(errno));
		}
		if (rc == 0)
			break;
		sink->data(sink->arg, dirsrc_buffer, (size_t) rc);
	}
	close(ds->fd);
	ds->fd = -1;
	return true;
}

RestoreSource *
source_directory_open(const char *archive_dir)
{
	DirectorySource *ds = calloc(1, sizeof(DirectorySource));

	if (ds == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	ds->source.describe = dirsrc_describe;
	ds->source.find = dirsrc_find;
	ds->source.read = dirsrc_read;
	ds->dir = archive_dir;
	ds->fd = -1;
	snprintf(ds->description, sizeof(ds->description),
			 "archive directory \"%s\"", archive_dir);
	return &ds->source;
}

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
 * read_from() and peek() read part of the file found, with lseek() and
 * pread(): the end of a segment, for a record that crosses into the next,
 * and the frame header of a compressed one (fetch.c).
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
static bool dirsrc_read_from(RestoreSource *source, const WvStoredFile *file,
							 uint64_t offset, const WvContentSink *sink);
static bool dirsrc_peek(RestoreSource *source, const WvStoredFile *file,
						unsigned char *buf, size_t len, size_t *got);

/* Where the symbolic link at path points, for messages */
static const char *
dirsrc_link_target(const char *path)
{
	static char target[WV_MAXPATH];
	ssize_t		len = readlink(path, target, sizeof(target) - 1);

	if (len < 0)
		return "?";
	target[len] = '\0';
	return target;
}

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

	/* a file found before and not read (a lookup only) is done with */
	if (ds->fd >= 0)
	{
		close(ds->fd);
		ds->fd = -1;
	}

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

			/*
			 * A name that is there but leads nowhere -- a symbolic link
			 * into storage that is not mounted -- is not a missing file:
			 * the file may well be archived, just out of reach now.
			 */
			if (lstat(file->location, &st) == 0)
				wv_error(WV_ERROR_IO, "could not open file \"%s\": it is a symbolic link to \"%s\", which does not exist",
						 file->location, dirsrc_link_target(file->location));
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

/*
 * Only the end of a file: the check of a record that crosses into the next
 * segment needs a few kB of a segment, not all of it.
 */
static bool
dirsrc_read_from(RestoreSource *source, const WvStoredFile *file,
				 uint64_t offset, const WvContentSink *sink)
{
	DirectorySource *ds = (DirectorySource *) source;

	if (lseek(ds->fd, (off_t) offset, SEEK_SET) < 0)
		wv_error(WV_ERROR_IO, "could not seek in file \"%s\": %s",
				 file->location, strerror(errno));
	return dirsrc_read(source, file, sink);
}

/* The first bytes, without moving the offset a read() starts from. */
static bool
dirsrc_peek(RestoreSource *source, const WvStoredFile *file,
			unsigned char *buf, size_t len, size_t *got)
{
	DirectorySource *ds = (DirectorySource *) source;
	ssize_t		rc;

	do
		rc = pread(ds->fd, buf, len, 0);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		wv_error(WV_ERROR_IO, "could not read file \"%s\": %s",
				 file->location, strerror(errno));
	*got = (size_t) rc;
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
	ds->source.read_from = dirsrc_read_from;
	ds->source.peek = dirsrc_peek;
	ds->dir = archive_dir;
	ds->fd = -1;
	snprintf(ds->description, sizeof(ds->description),
			 "archive directory \"%s\"", archive_dir);
	return &ds->source;
}

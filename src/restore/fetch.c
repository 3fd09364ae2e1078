/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  Fetch one file from a pg_walvault archive directory, checked, durably.
 *
 * The archive workers store a file under its own name, or compressed under
 * its name plus ".zst", ".lz4" or ".gz".  wv_fetch() looks the file up under
 * each name (plain first: cheapest, and it needs no decoder to be trusted),
 * decompresses it if needed, checks every piece of content before it is
 * written (wal_check.c), and puts it in place atomically: the content goes
 * to a temporary file next to the destination, is flushed, and renamed over
 * the destination, whose directory is then flushed.  The server never sees
 * a half-written file, and a crash never leaves one under the final name.
 *
 * The temporary file is created with O_EXCL and O_NOFOLLOW under a name
 * unique to this process ("<dest>.<pid>.<nonce>.pg_walvault_restore.tmp"):
 * two restores to one destination at once each write their own file (the
 * last rename wins, with a whole file), and a symlink planted under that
 * name is never followed.
 *
 * Only a missing file means "not in the archive".  Any other failure to
 * open or read it is an error (report.c decides its exit status), so that a
 * permission problem or an unreachable mount is never mistaken for the end
 * of the archive.  The prefetcher's workers (prefetcher.c) run this same
 * code into the spool directory.
 *
 * src/restore/fetch.c
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
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "restore.h"

/*
 * A test-only hook: with PG_WALVAULT_RESTORE_TEST_HOLD=NAME:FIFO in the
 * environment, the process restoring NAME stops right after the first piece
 * of content is in its temporary file: it writes "PID TEMPFILE" into FIFO
 * (waiting until the test reads), then waits until the test opens the FIFO
 * for writing and closes it.  With "worker:NAME:FIFO", only a prefetcher's
 * worker stops.  The tests hold a fetch there to kill a prefetcher mid-file,
 * or to run another restore meanwhile, without timing guesses.
 */
#define FETCH_TEST_HOLD_ENV "PG_WALVAULT_RESTORE_TEST_HOLD"

static bool fetch_in_worker = false;

typedef struct ArchiveVariant
{
	const char *suffix;
	WalvaultCodecMethod method;
} ArchiveVariant;

/* Names under which a file may be stored, in lookup order. */
static const ArchiveVariant archive_variants[] = {
	{"", WALVAULT_CODEC_NONE},
	{".zst", WALVAULT_CODEC_ZSTD},
	{".lz4", WALVAULT_CODEC_LZ4},
	{".gz", WALVAULT_CODEC_GZIP},
};

#define NUM_ARCHIVE_VARIANTS \
	(sizeof(archive_variants) / sizeof(archive_variants[0]))

/* Where restored bytes go: checked, then written to the temporary file. */
typedef struct FetchSink
{
	int			fd;				/* temporary file */
	const char *temp_path;
	const char *file_name;
	WalCheck	check;
	bool		held;			/* the test hook ran */
} FetchSink;

#define IO_BUFFER_SIZE	(128 * 1024)

static unsigned char in_buffer[IO_BUFFER_SIZE];

static size_t fetch_read(int fd, const char *path, void *buf, size_t len);
static void fetch_write(FetchSink *sink, const unsigned char *data,
						size_t len);
static bool fetch_codec_sink(void *arg, const char *data, size_t len);
static void fetch_copy(int fd, const char *path, FetchSink *sink);
static void fetch_decompress(int fd, const char *path,
							 const ArchiveVariant *variant, FetchSink *sink);
static int	fetch_open_temp(const char *dest, char *temp_path);
static void fetch_test_hold(FetchSink *sink);

/*
 * Read up to len bytes from the archive file.  Returns 0 at end of file.
 */
static size_t
fetch_read(int fd, const char *path, void *buf, size_t len)
{
	for (;;)
	{
		ssize_t		rc = read(fd, buf, len);

		if (rc >= 0)
			return (size_t) rc;
		if (errno != EINTR)
			wv_error(WV_ERROR_IO, "could not read file \"%s\": %s",
					 path, strerror(errno));
	}
}

/*
 * Check restored bytes, then append them to the temporary file.  The check
 * comes first, so that content beyond what the file may hold is never
 * written.
 */
static void
fetch_write(FetchSink *sink, const unsigned char *data, size_t len)
{
	if (len == 0)
		return;

	walcheck_data(&sink->check, data, len);

	while (len > 0)
	{
		ssize_t		rc = write(sink->fd, data, len);

		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			wv_error(WV_ERROR_IO, "could not write file \"%s\": %s",
					 sink->temp_path, strerror(errno));
		}
		if (rc == 0)
		{
			/* a write that makes no progress means the disk is full */
			wv_error(WV_ERROR_IO, "could not write file \"%s\": %s",
					 sink->temp_path, strerror(ENOSPC));
		}
		data += rc;
		len -= (size_t) rc;
	}

	if (!sink->held)
	{
		sink->held = true;
		fetch_test_hold(sink);
	}
}

static bool
fetch_codec_sink(void *arg, const char *data, size_t len)
{
	fetch_write((FetchSink *) arg, (const unsigned char *) data, len);
	return true;
}

static void
fetch_copy(int fd, const char *path, FetchSink *sink)
{
	size_t		nread;

	while ((nread = fetch_read(fd, path, in_buffer, sizeof(in_buffer))) > 0)
		fetch_write(sink, in_buffer, nread);
}

/*
 * Decompress a zstd, lz4 or gzip file (codec.c, the same code the module
 * compresses with).  Several concatenated frames or members are accepted,
 * as the command-line tools do; the file must end at a frame boundary.
 */
static void
fetch_decompress(int fd, const char *path, const ArchiveVariant *variant,
				 FetchSink *sink)
{
	WalvaultCodec *codec;
	size_t		nread;
	const char *err;

	codec = walvault_codec_create(variant->method, false);
	if (codec == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	if (!walvault_codec_start(codec, 0, 0, &err))
		wv_error(WV_ERROR_IO, "could not start %s decompression: %s",
				 walvault_codec_name(variant->method), err);

	while ((nread = fetch_read(fd, path, in_buffer, sizeof(in_buffer))) > 0)
	{
		if (!walvault_codec_feed(codec, (const char *) in_buffer, nread,
								 false, fetch_codec_sink, sink, &err))
			wv_error(WV_ERROR_CONTENT, "could not decompress file \"%s\": %s",
					 path, err);
	}

	if (!walvault_codec_finished(codec))
		wv_error(WV_ERROR_CONTENT,
				 "could not decompress file \"%s\": file is truncated", path);
	walvault_codec_free(codec);
}

/*
 * Create the temporary file for dest: exclusively, never through a
 * symlink, under a name no other process uses.  Returns the descriptor and
 * fills temp_path (WV_MAXPATH bytes).
 */
static int
fetch_open_temp(const char *dest, char *temp_path)
{
	static unsigned int counter = 0;

	for (int attempt = 0; attempt < 100; attempt++)
	{
		struct timespec ts;
		unsigned long nonce;
		int			rc;
		int			fd;

		clock_gettime(CLOCK_REALTIME, &ts);
		nonce = ((unsigned long) ts.tv_nsec ^ ((unsigned long) ts.tv_sec << 20)) +
			counter++;
		rc = snprintf(temp_path, WV_MAXPATH, "%s.%ld.%lx%s",
					  dest, (long) getpid(), nonce & 0xffffffffUL,
					  WV_TEMP_SUFFIX);
		if (rc < 0 || rc >= WV_MAXPATH)
			wv_error(WV_ERROR_USAGE, "destination path \"%s\" is too long",
					 dest);

		fd = open(temp_path,
				  O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0)
		{
			wv_temp_set(temp_path);
			return fd;
		}
		if (errno != EEXIST)
			wv_error(WV_ERROR_IO, "could not create file \"%s\": %s",
					 temp_path, strerror(errno));
	}
	wv_error(WV_ERROR_IO, "could not create a temporary file for \"%s\": too many already exist",
			 dest);
}

static void
fetch_test_hold(FetchSink *sink)
{
	const char *env = getenv(FETCH_TEST_HOLD_ENV);
	const char *colon;
	char		buf[256];
	int			fd;

	if (env != NULL && strncmp(env, "worker:", 7) == 0)
	{
		if (!fetch_in_worker)
			return;
		env += 7;
	}
	if (env == NULL || (colon = strchr(env, ':')) == NULL ||
		(size_t) (colon - env) != strlen(sink->file_name) ||
		strncmp(env, sink->file_name, colon - env) != 0)
		return;

	fd = open(colon + 1, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	snprintf(buf, sizeof(buf), "%ld %s\n", (long) getpid(), sink->temp_path);
	if (write(fd, buf, strlen(buf)) < 0)
	{
		/* the test will notice */
	}
	close(fd);

	fd = open(colon + 1, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* This process is a prefetcher's worker (for the test hook). */
void
wv_fetch_in_worker(void)
{
	fetch_in_worker = true;
}

/*
 * fsync the directory containing path, so that a rename into it survives a
 * crash.
 */
void
wv_fsync_parent_dir(const char *path)
{
	char		dir[WV_MAXPATH];
	char	   *slash;
	int			fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	fd = open(dir, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		wv_error(WV_ERROR_IO, "could not open directory \"%s\": %s",
				 dir, strerror(errno));

	/*
	 * Some file systems cannot fsync a directory and say so with EBADF or
	 * EINVAL; there is nothing more we could do there, so don't fail.
	 */
	if (fsync(fd) != 0 && errno != EBADF && errno != EINVAL)
		wv_error(WV_ERROR_IO, "could not fsync directory \"%s\": %s",
				 dir, strerror(errno));
	close(fd);
}

/*
 * Restore file_name (of the given kind) from archive_dir to dest.
 *
 * max_bytes, when not 0, bounds the content further (the prefetch spool's
 * room).  Returns WV_EXIT_RESTORED, with the size in *restored_bytes, or
 * WV_EXIT_NOT_FOUND when the file is in the archive under none of its
 * names.  Every error ends the process.
 */
int
wv_fetch(const char *archive_dir, const char *file_name,
		 WalvaultFileKind kind, const char *dest, uint64_t max_bytes,
		 uint64_t *restored_bytes)
{
	struct stat st;
	char		src_path[WV_MAXPATH];
	char		temp_path[WV_MAXPATH];
	const ArchiveVariant *variant = NULL;
	FetchSink	sink;
	int			src_fd = -1;

	if (stat(archive_dir, &st) != 0)
		wv_error(WV_ERROR_IO, "could not access archive directory \"%s\": %s",
				 archive_dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		wv_error(WV_ERROR_USAGE, "archive directory \"%s\" is not a directory",
				 archive_dir);

	for (size_t i = 0; i < NUM_ARCHIVE_VARIANTS; i++)
	{
		int			rc;

		rc = snprintf(src_path, sizeof(src_path), "%s/%s%s",
					  archive_dir, file_name, archive_variants[i].suffix);
		if (rc < 0 || (size_t) rc >= sizeof(src_path))
			wv_error(WV_ERROR_USAGE, "archive directory path \"%s\" is too long",
					 archive_dir);

		src_fd = open(src_path, O_RDONLY | O_CLOEXEC);
		if (src_fd >= 0)
		{
			variant = &archive_variants[i];
			break;
		}

		/*
		 * Only a missing file means "try the next name".  Anything else,
		 * such as a permission problem, must not be mistaken for the end of
		 * the archive.
		 */
		if (errno != ENOENT)
			wv_error(WV_ERROR_IO, "could not open file \"%s\": %s",
					 src_path, strerror(errno));
	}

	if (variant == NULL)
	{
		wv_verbose("file \"%s\" not found in archive directory \"%s\"",
				   file_name, archive_dir);
		return WV_EXIT_NOT_FOUND;
	}

	if (fstat(src_fd, &st) != 0)
		wv_error(WV_ERROR_IO, "could not stat file \"%s\": %s",
				 src_path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		wv_error(WV_ERROR_CONTENT, "archive file \"%s\" is not a regular file",
				 src_path);

	memset(&sink, 0, sizeof(sink));
	sink.file_name = file_name;
	sink.temp_path = temp_path;
	walcheck_init(&sink.check, file_name, kind, src_path, max_bytes);
	if (variant->method == WALVAULT_CODEC_NONE)
		walcheck_plain_size(&sink.check, (uint64_t) st.st_size);

	sink.fd = fetch_open_temp(dest, temp_path);

	if (variant->method == WALVAULT_CODEC_NONE)
		fetch_copy(src_fd, src_path, &sink);
	else
		fetch_decompress(src_fd, src_path, variant, &sink);
	close(src_fd);

	walcheck_finish(&sink.check);

	/* the data must be on disk before the rename makes it visible */
	if (fsync(sink.fd) != 0)
		wv_error(WV_ERROR_IO, "could not fsync file \"%s\": %s",
				 temp_path, strerror(errno));
	if (close(sink.fd) != 0)
		wv_error(WV_ERROR_IO, "could not close file \"%s\": %s",
				 temp_path, strerror(errno));

	if (rename(temp_path, dest) != 0)
		wv_error(WV_ERROR_IO, "could not rename file \"%s\" to \"%s\": %s",
				 temp_path, dest, strerror(errno));
	wv_temp_forget();

	/*
	 * If this fails, dest is complete but its directory entry may not be
	 * durable.  We report the error and leave dest alone: the server does
	 * not use a file whose restore_command failed, and it removes or
	 * overwrites it on the next attempt.
	 */
	wv_fsync_parent_dir(dest);

	wv_verbose("restored \"%s\" from \"%s\" (%s, %llu bytes)",
			   dest, src_path, walvault_codec_name(variant->method),
			   (unsigned long long) sink.check.nbytes);
	if (restored_bytes)
		*restored_bytes = sink.check.nbytes;
	return WV_EXIT_RESTORED;
}

/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  Fetch one file from a pg_walvault archive, checked, durably.
 *
 * The archive workers store a file under its own name, or compressed under
 * its name plus ".zst", ".lz4" or ".gz", in a directory or in an object
 * store alike.  What differs between the two is only how a file is found
 * and how its bytes are read: that is a source (restore.h), one file per
 * kind (source_directory.c, source_s3.c), and the options choose one, in
 * wv_open_source() and nowhere else.  Everything else is here, the same
 * for every kind of archive.
 *
 * wv_fetch() asks the source under which name the file is stored (plain
 * first: cheapest, and it needs no decoder to be trusted), has it stream
 * the stored bytes, decompresses them if needed, checks every piece of
 * content before it is written (wal_check.c), and puts the file in place
 * atomically: the content goes to a temporary file next to the
 * destination, is flushed, and renamed over the destination, whose
 * directory is then flushed.  The server never sees a half-written file,
 * and a crash never leaves one under the final name.  Nothing is held in
 * memory but a buffer: a source hands its bytes over as they come.
 *
 * The temporary file is created with O_EXCL and O_NOFOLLOW under a name
 * unique to this process ("<dest>.<pid>.<nonce>.pg_walvault_restore.tmp"):
 * two restores to one destination at once each write their own file (the
 * last rename wins, with a whole file), and a symlink planted under that
 * name is never followed.  A restore killed with SIGKILL cannot remove its
 * temporary file: the next restore to the same destination removes every
 * one whose process is gone.
 *
 * Only a file that the archive says is not there means "not in the
 * archive".  Any other failure to look it up or read it is an error
 * (report.c decides its exit status), so that a permission problem, an
 * unreachable mount or a store refusing us is never mistaken for the end
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * Where a source's bytes go: decompressed if the file is stored compressed,
 * checked, then written to the temporary file.
 */
typedef struct FetchSink
{
	int			fd;				/* temporary file */
	const char *temp_path;
	const char *file_name;
	WalvaultFileKind kind;
	uint64_t	max_bytes;
	const WvStoredFile *file;
	WalvaultCodec *codec;		/* NULL: stored as is */
	WalCheck	check;
	bool		held;			/* the test hook ran */
} FetchSink;

static void fetch_begin(FetchSink *sink);
static void fetch_write(FetchSink *sink, const unsigned char *data,
						size_t len);
static bool fetch_codec_sink(void *arg, const char *data, size_t len);
static void fetch_content(void *arg, const unsigned char *data, size_t len);
static void fetch_restart(void *arg);
static int	fetch_open_temp(const char *dest, char *temp_path);
static void fetch_remove_stale_temps(const char *dest);
static void fetch_test_hold(FetchSink *sink);

/*
 * Start checking (and decompressing) the content from its first byte.  An
 * uncompressed file's size is checked before anything is read: a history
 * file over its cap is refused without being copied.
 */
static void
fetch_begin(FetchSink *sink)
{
	const char *err;

	walcheck_init(&sink->check, sink->file_name, sink->kind,
				  sink->file->location, sink->max_bytes);
	if (sink->codec == NULL)
		walcheck_plain_size(&sink->check, sink->file->size);
	else if (!walvault_codec_start(sink->codec, 0, 0, &err))
		wv_error(WV_ERROR_IO, "could not start %s decompression: %s",
				 walvault_codec_name(sink->file->method), err);
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

/*
 * The next stored bytes, from the source.  A zstd, lz4 or gzip file is
 * decompressed with codec.c, the same code the module compresses with.
 * Several concatenated frames or members are accepted, as the command-line
 * tools do; wv_fetch() checks that the file ends at a frame boundary.
 */
static void
fetch_content(void *arg, const unsigned char *data, size_t len)
{
	FetchSink  *sink = (FetchSink *) arg;
	const char *err;

	if (sink->codec == NULL)
	{
		fetch_write(sink, data, len);
		return;
	}
	if (!walvault_codec_feed(sink->codec, (const char *) data, len, false,
							 fetch_codec_sink, sink, &err))
		wv_error(WV_ERROR_CONTENT, "could not decompress file \"%s\": %s",
				 sink->file->location, err);
}

/*
 * The source starts over (a download retried after its connection broke):
 * empty the temporary file and check from the beginning again.
 */
static void
fetch_restart(void *arg)
{
	FetchSink  *sink = (FetchSink *) arg;

	if (ftruncate(sink->fd, 0) != 0 || lseek(sink->fd, 0, SEEK_SET) != 0)
		wv_error(WV_ERROR_IO, "could not truncate file \"%s\": %s",
				 sink->temp_path, strerror(errno));
	wv_verbose("reading \"%s\" again from its beginning",
			   sink->file->location);
	fetch_begin(sink);
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

/*
 * Remove the temporary files for dest ("<dest>.<pid>.<nonce>" plus the
 * suffix) of processes that are gone: restores killed mid-file.  A file
 * whose process still runs, or runs under another user, is left alone.
 */
static void
fetch_remove_stale_temps(const char *dest)
{
	char		dir[WV_MAXPATH];
	const char *base;
	const char *slash = strrchr(dest, '/');
	DIR		   *d;
	struct dirent *de;

	if (slash == NULL)
	{
		strcpy(dir, ".");
		base = dest;
	}
	else
	{
		snprintf(dir, sizeof(dir), "%.*s",
				 slash == dest ? 1 : (int) (slash - dest), dest);
		base = slash + 1;
	}

	d = opendir(dir);
	if (d == NULL)
		return;					/* creating the temporary file will say why */
	while ((de = readdir(d)) != NULL)
	{
		char		prefix[WV_MAXPATH];
		char		path[WV_MAXPATH];
		long		pid;

		if (!spool_temp_owner(de->d_name, &pid) || pid == (long) getpid())
			continue;
		snprintf(prefix, sizeof(prefix), "%s.%ld.", base, pid);
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (kill((pid_t) pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0)
			wv_verbose("removed \"%s\", left by process %ld, which is gone",
					   path, pid);
	}
	closedir(d);
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
 * The source the options name.  This is the one place that knows which
 * kinds of archive there are.
 */
RestoreSource *
wv_open_source(const RestoreOptions *opts)
{
	if (opts->archive_url != NULL)
		return source_s3_open(opts);
	return source_directory_open(opts->archive_dir);
}

/*
 * A short key (hex) of the archive the options name, whatever its kind: a
 * 64-bit FNV-1a hash of every option that says where the files come from.
 * A request to the prefetcher carries it, so that a prefetcher started with
 * another archive never serves what it fetched from there.
 */
void
wv_archive_key(const RestoreOptions *opts, char *key, size_t key_size)
{
	const char *fields[6];
	char		style[16];
	uint64_t	hash = UINT64_C(0xcbf29ce484222325);

	snprintf(style, sizeof(style), "%d", opts->s3_uri_style);
	fields[0] = opts->archive_dir;
	fields[1] = opts->archive_url;
	fields[2] = opts->s3_endpoint;
	fields[3] = opts->s3_region;
	fields[4] = style;
	fields[5] = opts->s3_ca_file;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
	{
		const char *p = fields[i] != NULL ? fields[i] : "";

		/* each field ends with a byte no option holds: no ambiguity */
		for (;; p++)
		{
			hash ^= (unsigned char) (*p != '\0' ? *p : 0xff);
			hash *= UINT64_C(0x100000001b3);
			if (*p == '\0')
				break;
		}
	}
	snprintf(key, key_size, "%016llx", (unsigned long long) hash);
}

/*
 * Restore file_name (of the given kind) from source to dest.
 *
 * max_bytes, when not 0, bounds the content further (the prefetch spool's
 * room).  Returns WV_EXIT_RESTORED, with the size in *restored_bytes, or
 * WV_EXIT_NOT_FOUND when the file is in the archive under none of its
 * names.  Every error ends the process.
 */
int
wv_fetch(RestoreSource *source, const char *file_name,
		 WalvaultFileKind kind, const char *dest, uint64_t max_bytes,
		 uint64_t *restored_bytes)
{
	WvStoredFile file;
	char		temp_path[WV_MAXPATH];
	FetchSink	sink;
	WvContentSink content;

	fetch_remove_stale_temps(dest);

	if (!source->find(source, file_name, &file))
	{
		wv_verbose("file \"%s\" not found in %s",
				   file_name, source->describe(source));
		return WV_EXIT_NOT_FOUND;
	}

	memset(&sink, 0, sizeof(sink));
	sink.file_name = file_name;
	sink.kind = kind;
	sink.max_bytes = max_bytes;
	sink.file = &file;
	sink.temp_path = temp_path;
	if (file.method != WALVAULT_CODEC_NONE)
	{
		sink.codec = walvault_codec_create(file.method, false);
		if (sink.codec == NULL)
			wv_error(WV_ERROR_IO, "out of memory");
	}
	fetch_begin(&sink);

	sink.fd = fetch_open_temp(dest, temp_path);

	content.arg = &sink;
	content.data = fetch_content;
	content.restart = fetch_restart;
	if (!source->read(source, &file, &content))
	{
		/* removed since it was found: it is not in the archive now */
		close(sink.fd);
		if (unlink(temp_path) != 0)
			wv_error(WV_ERROR_IO, "could not remove file \"%s\": %s",
					 temp_path, strerror(errno));
		wv_temp_forget();
		walvault_codec_free(sink.codec);
		wv_verbose("file \"%s\" not found in %s: \"%s\" was removed while it was being read",
				   file_name, source->describe(source), file.location);
		return WV_EXIT_NOT_FOUND;
	}

	if (sink.codec != NULL)
	{
		if (!walvault_codec_finished(sink.codec))
			wv_error(WV_ERROR_CONTENT,
					 "could not decompress file \"%s\": file is truncated",
					 file.location);
		walvault_codec_free(sink.codec);
	}

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
			   dest, file.location, walvault_codec_name(file.method),
			   (unsigned long long) sink.check.nbytes);
	if (restored_bytes)
		*restored_bytes = sink.check.nbytes;
	return WV_EXIT_RESTORED;
}

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
 * A segment may begin with the end of a record that began in the segment
 * before, whose CRC only the two together can show: before the rename, the
 * end of that segment is read from the archive too, unless both files
 * carry checksums of all their content (fetch_check_head()).  With no
 * destination, wv_fetch() does all of this and writes nothing (verify).
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

/* enough for the header of a zstd or lz4 frame */
#define FETCH_STORED_HEAD	32

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
	/* the first stored bytes: a frame header says what it checks */
	unsigned char stored_head[FETCH_STORED_HEAD];
	size_t		stored_head_len;
} FetchSink;

/*
 * Where the bytes of an earlier segment go, for the check of a record that
 * crosses into the one restored: decompressed if need be, those before
 * skip dropped, the rest to a walk of the records (wal_records.c).
 */
typedef struct NeighbourSink
{
	const WvStoredFile *file;
	WalvaultCodec *codec;		/* NULL: stored as is */
	uint64_t	skip;			/* content bytes to drop first */
	uint64_t	seen;			/* content bytes received */
	WalRecordWalk *walk;
	WalRecordWalk walk_at_start;	/* for a restart */
} NeighbourSink;

static void fetch_begin(FetchSink *sink);
static void fetch_write(FetchSink *sink, const unsigned char *data,
						size_t len);
static bool fetch_codec_sink(void *arg, const char *data, size_t len);
static void fetch_content(void *arg, const unsigned char *data, size_t len);
static void fetch_restart(void *arg);
static int	fetch_open_temp(const char *dest, char *temp_path);
static void fetch_remove_stale_temps(const char *dest);
static void fetch_test_hold(FetchSink *sink);
static bool fetch_neighbour_codec_sink(void *arg, const char *data,
									   size_t len);
static void fetch_neighbour_content(void *arg, const unsigned char *data,
									size_t len);
static void fetch_neighbour_restart(void *arg);
static bool fetch_neighbour_read(RestoreSource *source,
								 const char *file_name, uint64_t offset,
								 WvStoredFile *file, WalRecordWalk *walk);
static bool fetch_neighbours_covered(RestoreSource *source,
									 const WalCheck *check,
									 uint64_t first_seg);
static void fetch_check_head(RestoreSource *source, const WalCheck *check,
							 bool covered);

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
	sink->stored_head_len = 0;
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
	if (sink->fd < 0)
		return;					/* only checking */

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

	if (sink->stored_head_len < FETCH_STORED_HEAD)
	{
		size_t		n = FETCH_STORED_HEAD - sink->stored_head_len;

		if (n > len)
			n = len;
		memcpy(sink->stored_head + sink->stored_head_len, data, n);
		sink->stored_head_len += n;
	}
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

	if (sink->fd >= 0 &&
		(ftruncate(sink->fd, 0) != 0 || lseek(sink->fd, 0, SEEK_SET) != 0))
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

/* Content of an earlier segment: to the walk, from offset skip on. */
static bool
fetch_neighbour_codec_sink(void *arg, const char *data, size_t len)
{
	NeighbourSink *ns = (NeighbourSink *) arg;
	const unsigned char *p = (const unsigned char *) data;

	if (ns->seen < ns->skip)
	{
		uint64_t	drop = ns->skip - ns->seen;

		if (drop >= len)
		{
			ns->seen += len;
			return true;
		}
		p += drop;
		len -= (size_t) drop;
		ns->seen += drop;
	}
	walrec_data(ns->walk, p, len);
	ns->seen += len;
	return true;
}

static void
fetch_neighbour_content(void *arg, const unsigned char *data, size_t len)
{
	NeighbourSink *ns = (NeighbourSink *) arg;
	const char *err;

	if (ns->codec == NULL)
	{
		fetch_neighbour_codec_sink(ns, (const char *) data, len);
		return;
	}
	if (!walvault_codec_feed(ns->codec, (const char *) data, len, false,
							 fetch_neighbour_codec_sink, ns, &err))
		wv_error(WV_ERROR_CONTENT, "could not decompress file \"%s\": %s",
				 ns->file->location, err);
}

static void
fetch_neighbour_restart(void *arg)
{
	NeighbourSink *ns = (NeighbourSink *) arg;
	const char *err;

	*ns->walk = ns->walk_at_start;
	ns->seen = 0;
	if (ns->codec != NULL && !walvault_codec_start(ns->codec, 0, 0, &err))
		wv_error(WV_ERROR_IO, "could not start %s decompression: %s",
				 walvault_codec_name(ns->file->method), err);
}

/*
 * Feed the segment file_name from content offset on into walk, which is
 * positioned there.  False if the archive does not have it.  A file
 * stored as is is read from offset on, when the source can; a compressed
 * one is decompressed from its start.
 */
static bool
fetch_neighbour_read(RestoreSource *source, const char *file_name,
					 uint64_t offset, WvStoredFile *file, WalRecordWalk *walk)
{
	NeighbourSink ns;
	WvContentSink content;
	const char *err;
	bool		found;

	if (!source->find(source, file_name, file))
		return false;
	walk->src_path = file->location;	/* messages name the file read */

	memset(&ns, 0, sizeof(ns));
	ns.file = file;
	ns.walk = walk;
	ns.walk_at_start = *walk;
	content.arg = &ns;
	content.data = fetch_neighbour_content;
	content.restart = fetch_neighbour_restart;

	if (file->method == WALVAULT_CODEC_NONE && source->read_from != NULL)
		found = source->read_from(source, file, offset, &content);
	else
	{
		ns.skip = offset;
		if (file->method != WALVAULT_CODEC_NONE)
		{
			ns.codec = walvault_codec_create(file->method, false);
			if (ns.codec == NULL)
				wv_error(WV_ERROR_IO, "out of memory");
			if (!walvault_codec_start(ns.codec, 0, 0, &err))
				wv_error(WV_ERROR_IO, "could not start %s decompression: %s",
						 walvault_codec_name(file->method), err);
		}
		found = source->read(source, file, &content);
		if (found && ns.codec != NULL && !walvault_codec_finished(ns.codec))
			wv_error(WV_ERROR_CONTENT,
					 "could not decompress file \"%s\": file is truncated",
					 file->location);
		walvault_codec_free(ns.codec);
	}
	if (found)
		walrec_end_segment(walk);
	return found;
}

/*
 * Are the earlier segments from first_seg on, up to the one check is of,
 * all in the archive, each stored with a checksum of all of its content
 * (walvault_codec_covers_content)?  Then a restore of each checked every
 * byte of it, as this restore did of this segment if it is so stored too.
 */
static bool
fetch_neighbours_covered(RestoreSource *source, const WalCheck *check,
						 uint64_t first_seg)
{
	if (source->peek == NULL)
		return false;
	for (uint64_t segno = first_seg; segno < check->segno; segno++)
	{
		char		name[WALVAULT_MAX_NAME_LEN + 1];
		unsigned char head[FETCH_STORED_HEAD];
		WvStoredFile file;
		size_t		got;

		spool_segment_name(name, check->records.first_tli, segno,
						   check->seg_size);
		if (!source->find(source, name, &file) ||
			file.method == WALVAULT_CODEC_NONE ||
			!source->peek(source, &file, head, sizeof(head), &got) ||
			!walvault_codec_covers_content(file.method, head, got,
										   check->seg_size))
			return false;
	}
	return true;
}

/*
 * The segment just checked may begin with the end of a record that began
 * in an earlier segment (wal_records.c): check that record's CRC, reading
 * the earlier segments' ends from the archive.  Replay cannot use the
 * record before this segment is restored, so this is the last moment, and
 * enough.
 *
 * Unless every byte of it is checked already: covered says this segment is
 * stored with a checksum of all of its content, which decompression
 * checked; if the earlier segments are stored so too, each of their
 * restores checks their part (a zstd, lz4 or gzip archive of this version:
 * the expensive case, where the earlier segment would be decompressed
 * again).  Only what the archive holds decides, file by file, so an
 * archive written partly by older versions is read where it must be.
 *
 * The record's start is the xl_prev of the first record that begins in
 * this segment; the earlier segments are those of the timeline of this
 * one's first page (a new timeline's first segment begins with its
 * parent's WAL).  When no record begins here after it (the record is a
 * WAL switch, or ends within the last bytes), the segment before is walked
 * from its first record instead.  Not checked, with a verbose note: a
 * record whose earlier segments are not in the archive (then replay cannot
 * reach it through this archive either), and one that has no record start
 * to walk from in the segment before (longer than a segment, and followed
 * by no record here).
 */
static void
fetch_check_head(RestoreSource *source, const WalCheck *check, bool covered)
{
	WalRecordWalk prefix;
	WvStoredFile file;
	uint64_t	seg_start = check->segno * check->seg_size;
	uint64_t	start;
	uint64_t	first_seg;
	bool		start_known;

	if (!check->walk_records ||
		!walrec_head_to_check(&check->records, &start, &start_known))
		return;

	if (start_known)
	{
		/* no record is longer than 1 GB: never look further back */
		if (start >= seg_start ||
			seg_start - start > WV_WAL_SEG_MAX_SIZE + check->seg_size)
			wv_error(WV_ERROR_CONTENT,
					 "restored content of \"%s\" begins with the end of a WAL record, but the record after it says the previous one begins at %X/%08X",
					 check->src_path, (unsigned int) (start >> 32),
					 (unsigned int) start);
		walrec_begin_prefix(&prefix, check->src_path, check->blcksz,
							check->seg_size, start, true);
		first_seg = start / check->seg_size;
	}
	else
	{
		if (check->segno == 0)
			return;
		first_seg = check->segno - 1;
		walrec_begin_prefix(&prefix, check->src_path, check->blcksz,
							check->seg_size, first_seg * check->seg_size,
							false);
	}

	if (covered && fetch_neighbours_covered(source, check, first_seg))
	{
		wv_verbose("the WAL record that \"%s\" begins with is covered by the checksums of the compressed files",
				   check->src_path);
		return;
	}

	for (uint64_t segno = first_seg; segno < check->segno; segno++)
	{
		char		name[WALVAULT_MAX_NAME_LEN + 1];

		spool_segment_name(name, check->records.first_tli, segno,
						   check->seg_size);
		if (!fetch_neighbour_read(source, name,
								  segno == first_seg ? start % check->seg_size : 0,
								  &file, &prefix))
		{
			wv_verbose("the WAL record that \"%s\" begins with was not checked: \"%s\" is not in %s",
					   check->src_path, name, source->describe(source));
			return;
		}
		if (segno + 1 < check->segno)
			walrec_next_segment(&prefix, file.location);
	}

	if (!start_known && walrec_prefix_in_head(&prefix))
	{
		wv_verbose("the WAL record that \"%s\" begins with was not checked: no record begins after it, nor in \"%s\"",
				   check->src_path, file.location);
		return;
	}
	walrec_check_head(&check->records, &prefix, file.location);
	wv_verbose("checked the WAL record that \"%s\" begins with, from \"%s\"",
			   check->src_path, file.location);
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
	const char *fields[7];
	char		style[16];
	uint64_t	hash = UINT64_C(0xcbf29ce484222325);

	snprintf(style, sizeof(style), "%d", opts->s3_uri_style);
	fields[0] = opts->archive_dir;
	fields[1] = opts->archive_url;
	fields[2] = opts->s3_endpoint;
	fields[3] = opts->s3_region;
	fields[4] = style;
	fields[5] = opts->s3_ca_file;
	fields[6] = wv_marker_is_required() ? "marker" : "no marker";

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
 * A file is not in source: that may be said only of an archive that is
 * there (marker.c).
 */
static void
fetch_marker_check(RestoreSource *source)
{
	ServerIdentity server;

	wv_identify_server(&server);
	wv_marker_check(source, &server);
}

/*
 * Restore file_name (of the given kind) from source to dest.
 *
 * max_bytes, when not 0, bounds the content further (the prefetch spool's
 * room).  Returns WV_EXIT_RESTORED, with the size in *restored_bytes, or
 * WV_EXIT_NOT_FOUND when the file is in the archive under none of its
 * names.  Every error ends the process.
 *
 * With dest NULL, the file is checked exactly as a restore checks it, and
 * nothing is written (verify): WV_EXIT_RESTORED then means "would be
 * restored".
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

	if (dest != NULL)
		fetch_remove_stale_temps(dest);

	if (!source->find(source, file_name, &file))
	{
		wv_verbose("file \"%s\" not found in %s",
				   file_name, source->describe(source));
		fetch_marker_check(source);
		return WV_EXIT_NOT_FOUND;
	}

	memset(&sink, 0, sizeof(sink));
	sink.file_name = file_name;
	sink.kind = kind;
	sink.max_bytes = max_bytes;
	sink.file = &file;
	sink.temp_path = temp_path;
	sink.fd = -1;
	temp_path[0] = '\0';
	if (file.method != WALVAULT_CODEC_NONE)
	{
		sink.codec = walvault_codec_create(file.method, false);
		if (sink.codec == NULL)
			wv_error(WV_ERROR_IO, "out of memory");
	}
	fetch_begin(&sink);

	if (dest != NULL)
		sink.fd = fetch_open_temp(dest, temp_path);

	content.arg = &sink;
	content.data = fetch_content;
	content.restart = fetch_restart;
	if (!source->read(source, &file, &content))
	{
		/* removed since it was found: it is not in the archive now */
		if (sink.fd >= 0)
		{
			close(sink.fd);
			if (unlink(temp_path) != 0)
				wv_error(WV_ERROR_IO, "could not remove file \"%s\": %s",
						 temp_path, strerror(errno));
			wv_temp_forget();
		}
		walvault_codec_free(sink.codec);
		wv_verbose("file \"%s\" not found in %s: \"%s\" was removed while it was being read",
				   file_name, source->describe(source), file.location);
		fetch_marker_check(source);
		return WV_EXIT_NOT_FOUND;
	}

	if (sink.codec != NULL && !walvault_codec_finished(sink.codec))
		wv_error(WV_ERROR_CONTENT,
				 "could not decompress file \"%s\": file is truncated",
				 file.location);

	walcheck_finish(&sink.check);
	walvault_codec_free(sink.codec);
	sink.codec = NULL;
	fetch_check_head(source, &sink.check,
					 walvault_codec_covers_content(file.method,
												   sink.stored_head,
												   sink.stored_head_len,
												   sink.check.nbytes));

	if (dest == NULL)
	{
		wv_verbose("checked \"%s\" (%s, %llu bytes)",
				   file.location, walvault_codec_name(file.method),
				   (unsigned long long) sink.check.nbytes);
		if (restored_bytes)
			*restored_bytes = sink.check.nbytes;
		return WV_EXIT_RESTORED;
	}

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

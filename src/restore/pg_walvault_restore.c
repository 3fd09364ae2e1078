/*-------------------------------------------------------------------------
 *
 * pg_walvault_restore.c
 *	  restore_command helper that fetches files from a pg_walvault archive
 *
 * The pg_walvault archive workers store each archived file under its
 * original name in the archive directory, either as is or compressed with
 * one of zstd, lz4 (frame format) or gzip, in which case the name gets the
 * suffix ".zst", ".lz4" or ".gz".  This program is meant to be used as
 *
 *		restore_command = 'pg_walvault_restore -d /archive %f %p'
 *
 * It looks the requested file up under each of those names (plain name
 * first), decompresses it if needed, checks that a WAL segment looks like
 * one, and puts it in place atomically: the content is written to a
 * temporary file next to the destination, flushed, and renamed over the
 * destination, so the server never sees a half-written file.
 *
 * Exit code contract:
 *
 *	0	the file was restored to the destination path.
 *	1	the file is not in the archive under any of the names.  This is
 *		the normal way archive recovery learns that it has reached the end
 *		of the archived WAL, so nothing is printed unless -v is given.
 *	2	anything else: bad usage, an invalid file name, a missing archive
 *		directory, an I/O error, or an archived file that is corrupt.  A
 *		message is printed on stderr and no destination file is left
 *		behind.
 *
 * Note that the server treats every exit code from 1 to 125 as "file not
 * available", so a corrupt archive file does not by itself abort recovery;
 * the message we print on stderr ends up in the server log.
 *
 * This program deliberately includes no PostgreSQL headers: postgres_fe.h
 * maps printf, strerror and friends to libpgport replacements, and we do
 * not link libpgport or libpgcommon.  The few WAL definitions we need are
 * mirrored below.
 *
 * IDENTIFICATION
 *	  src/restore/pg_walvault_restore.c
 *
 *-------------------------------------------------------------------------
 */

/* POSIX.1-2008 is needed (fsync etc.) even when compiling in strict C mode */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "codec.h"
#include "wal_names.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WV_PRINTF_ATTR(f, a) __attribute__((format(printf, f, a)))
#define WV_NORETURN __attribute__((noreturn))
#else
#define WV_PRINTF_ATTR(f, a)
#define WV_NORETURN
#endif

#define PROGRAM_NAME	"pg_walvault_restore"
#define PROGRAM_VERSION WALVAULT_VERSION

/* Exit codes, see the file header */
#define EXIT_RESTORED	0
#define EXIT_NOT_FOUND	1
#define EXIT_ERROR		2

/*
 * Mirrors of the definitions in the server's access/xlog_internal.h.  The
 * page header has not changed since long before 15; what changes with every
 * major version is the page magic, the version of the WAL format.  The
 * structs use the same member types in the same nesting as the server's own,
 * so the compiler lays them out exactly as the server does when it writes a
 * segment on this platform.
 */
#define WV_XLP_LONG_HEADER	0x0002
#define WV_WAL_SEG_MIN_SIZE (UINT64_C(1024) * 1024)
#define WV_WAL_SEG_MAX_SIZE (UINT64_C(1024) * 1024 * 1024)

typedef struct WvXLogPageHeaderData
{
	uint16_t	xlp_magic;
	uint16_t	xlp_info;
	uint32_t	xlp_tli;		/* TimeLineID */
	uint64_t	xlp_pageaddr;	/* XLogRecPtr */
	uint32_t	xlp_rem_len;
} WvXLogPageHeaderData;

typedef struct WvXLogLongPageHeaderData
{
	WvXLogPageHeaderData std;
	uint64_t	xlp_sysid;
	uint32_t	xlp_seg_size;
	uint32_t	xlp_xlog_blcksz;
} WvXLogLongPageHeaderData;

/*
 * XLOG_PAGE_MAGIC of every major version pg_walvault supports: a segment is
 * restored only if it carries the magic of the server that asks for it.
 */
typedef struct WalVersion
{
	int			major;
	uint16_t	page_magic;
} WalVersion;

static const WalVersion wal_versions[] = {
	{15, 0xD110},
	{16, 0xD113},
	{17, 0xD116},
	{18, 0xD118},
};

#define NUM_WAL_VERSIONS (sizeof(wal_versions) / sizeof(wal_versions[0]))

/* The server this program was built for (the Makefile says which). */
#ifndef WV_SERVER_MAJOR
#error "WV_SERVER_MAJOR must be defined"
#endif

/*
 * The server asking, as far as we can tell: its major version and its
 * database system identifier, read from the data directory, which is the
 * working directory of a restore_command.
 */
typedef struct ServerIdentity
{
	const WalVersion *version;	/* never NULL */
	const char *version_source; /* where the version came from */
	bool		have_sysid;
	uint64_t	sysid;
} ServerIdentity;


typedef struct ArchiveVariant
{
	const char *suffix;
	const char *description;
	WalvaultCodecMethod method;
} ArchiveVariant;

/*
 * Names under which a file may be stored, in lookup order.  The plain name
 * comes first because it is the cheapest to restore and because an
 * uncompressed copy, if one exists, needs no decoder to be trusted.
 */
static const ArchiveVariant archive_variants[] = {
	{"", "uncompressed", WALVAULT_CODEC_NONE},
	{".zst", "zstd", WALVAULT_CODEC_ZSTD},
	{".lz4", "lz4", WALVAULT_CODEC_LZ4},
	{".gz", "gzip", WALVAULT_CODEC_GZIP},
};

#define NUM_ARCHIVE_VARIANTS \
	(sizeof(archive_variants) / sizeof(archive_variants[0]))

/*
 * Where restored bytes go.  Besides writing to the temporary file, it counts
 * the bytes and keeps a copy of the first page header so that a WAL segment
 * can be checked without reading the file back.
 */
typedef struct RestoreSink
{
	int			fd;				/* temporary file */
	const char *src_path;		/* archive file, for messages */
	uint64_t	nbytes;			/* bytes written so far */
	uint64_t	limit;			/* maximum acceptable size, 0 = none */
	unsigned char head[sizeof(WvXLogLongPageHeaderData)];
	size_t		head_len;		/* valid bytes in head */
} RestoreSink;

#define IO_BUFFER_SIZE	(128 * 1024)

/* longest path we build; generous compared to the server's MAXPGPATH */
#define WV_MAXPATH		4096

static unsigned char in_buffer[IO_BUFFER_SIZE];

static bool verbose = false;

/* Temporary file to remove if we fail; valid while temp_created is set */
static char temp_path[WV_MAXPATH];
static bool temp_created = false;

static void usage(void);
static void report_error(const char *fmt,...) WV_PRINTF_ATTR(1, 2) WV_NORETURN;
static void usage_error(const char *fmt,...) WV_PRINTF_ATTR(1, 2) WV_NORETURN;
static void report_verbose(const char *fmt,...) WV_PRINTF_ATTR(1, 2);


/*
 * Print the help text on stdout.
 */
static void
usage(void)
{
	printf("%s restores files from a pg_walvault archive directory.\n"
		   "It is meant to be used as a PostgreSQL restore_command.\n\n",
		   PROGRAM_NAME);
	printf("Usage:\n");
	printf("  %s [OPTION]... -d DIRECTORY FILE DESTINATION\n\n", PROGRAM_NAME);
	printf("Options:\n");
	printf("  -d, --directory=DIR    archive directory to restore from\n");
	printf("  -v, --verbose          report what is done on stderr\n");
	printf("  -V, --version          output version information, then exit\n");
	printf("  -?, --help             show this help, then exit\n\n");
	printf("FILE is looked up as FILE, FILE.zst, FILE.lz4 and FILE.gz, in that\n"
		   "order, and written to DESTINATION.\n\n");
	printf("Example:\n"
		   "  restore_command = '%s -d /mnt/archive %%f %%p'\n\n",
		   PROGRAM_NAME);
	printf("Exit status is 0 if the file was restored, 1 if it is not in the\n"
		   "archive, and 2 on any error.\n");
}

/* Print "pg_walvault_restore: error: <message>" on stderr. */
static void WV_PRINTF_ATTR(1, 0)
print_error(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: error: ", PROGRAM_NAME);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/*
 * Report an error and exit with EXIT_ERROR.
 *
 * The temporary file is removed first so that a failed restore leaves
 * nothing behind in pg_wal; the destination itself is only ever created by
 * rename(), so it cannot be partial.
 */
static void
report_error(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	print_error(fmt, ap);
	va_end(ap);

	if (temp_created)
	{
		if (unlink(temp_path) != 0 && errno != ENOENT)
			fprintf(stderr, "%s: warning: could not remove file \"%s\": %s\n",
					PROGRAM_NAME, temp_path, strerror(errno));
		temp_created = false;
	}

	exit(EXIT_ERROR);
}

/*
 * Report a command-line problem, with a hint pointing at --help.
 */
static void
usage_error(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	print_error(fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: hint: Try \"%s --help\" for more information.\n",
			PROGRAM_NAME, PROGRAM_NAME);

	exit(EXIT_ERROR);
}

/*
 * Print a progress message on stderr if -v was given.
 */
static void
report_verbose(const char *fmt,...)
{
	va_list		ap;

	if (!verbose)
		return;

	fprintf(stderr, "%s: ", PROGRAM_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * Is size acceptable for a WAL segment?  The server only supports power of
 * two sizes from 1 MB to 1 GB.
 */
static bool
is_valid_segment_size(uint64_t size)
{
	return size >= WV_WAL_SEG_MIN_SIZE && size <= WV_WAL_SEG_MAX_SIZE &&
		(size & (size - 1)) == 0;
}

/*
 * Read up to len bytes from the archive file.  Returns 0 at end of file.
 */
static size_t
read_source(int fd, const char *path, void *buf, size_t len)
{
	for (;;)
	{
		ssize_t		rc = read(fd, buf, len);

		if (rc >= 0)
			return (size_t) rc;
		if (errno != EINTR)
			report_error("could not read file \"%s\": %s",
						 path, strerror(errno));
	}
}

/*
 * Append restored bytes to the temporary file.
 */
static void
sink_write(RestoreSink *sink, const unsigned char *data, size_t len)
{
	if (len == 0)
		return;

	/*
	 * Stop early on content too large to be valid, so that a corrupt or
	 * malicious compressed file cannot fill up the disk holding pg_wal.
	 */
	if (sink->limit != 0 && sink->nbytes + len > sink->limit)
		report_error("restored content of \"%s\" exceeds the maximum WAL segment size of %llu bytes",
					 sink->src_path, (unsigned long long) sink->limit);

	if (sink->head_len < sizeof(sink->head))
	{
		size_t		n = sizeof(sink->head) - sink->head_len;

		if (n > len)
			n = len;
		memcpy(sink->head + sink->head_len, data, n);
		sink->head_len += n;
	}

	while (len > 0)
	{
		ssize_t		rc = write(sink->fd, data, len);

		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			report_error("could not write file \"%s\": %s",
						 temp_path, strerror(errno));
		}
		if (rc == 0)
		{
			/* a write that makes no progress means the disk is full */
			report_error("could not write file \"%s\": %s",
						 temp_path, strerror(ENOSPC));
		}
		data += rc;
		len -= (size_t) rc;
		sink->nbytes += (uint64_t) rc;
	}
}

/*
 * Copy an uncompressed archive file.
 */
static void
copy_plain(int fd, const char *path, RestoreSink *sink)
{
	size_t		nread;

	while ((nread = read_source(fd, path, in_buffer, sizeof(in_buffer))) > 0)
		sink_write(sink, in_buffer, nread);
}

/*
 * Codec sink: the decompressed bytes go to the restore sink.
 */
static bool
decompressed_write(void *arg, const char *data, size_t len)
{
	sink_write((RestoreSink *) arg, (const unsigned char *) data, len);
	return true;
}

/*
 * Decompress a zstd, lz4 or gzip file (codec.c, the same code the module
 * compresses with).  Several concatenated frames or members are accepted,
 * as the command-line tools do; the file must end at a frame boundary.
 */
static void
decompress_file(int fd, const char *path, const ArchiveVariant *variant,
				RestoreSink *sink)
{
	WalvaultCodec *codec;
	size_t		nread;
	const char *err;

	codec = walvault_codec_create(variant->method, false);
	if (codec == NULL)
		report_error("out of memory");
	if (!walvault_codec_start(codec, 0, 0, &err))
		report_error("could not start %s decompression: %s",
					 variant->description, err);

	while ((nread = read_source(fd, path, in_buffer, sizeof(in_buffer))) > 0)
	{
		if (!walvault_codec_feed(codec, (const char *) in_buffer, nread, false,
								 decompressed_write, sink, &err))
			report_error("could not decompress file \"%s\": %s", path, err);
	}

	if (!walvault_codec_finished(codec))
		report_error("could not decompress file \"%s\": file is truncated",
					 path);
	walvault_codec_free(codec);
}

/*
 * Check that restored content is a plausible WAL segment.
 *
 * This catches archive files that were truncated or overwritten with
 * something else, which the server would otherwise only notice, with a less
 * helpful message, when it reads the segment.  A .partial segment is as big
 * as a complete one, so the same checks apply.
 */
static const WalVersion *
find_wal_version_by_major(int major)
{
	size_t		i;

	for (i = 0; i < NUM_WAL_VERSIONS; i++)
		if (wal_versions[i].major == major)
			return &wal_versions[i];
	return NULL;
}

static const WalVersion *
find_wal_version_by_magic(uint16_t magic)
{
	size_t		i;

	for (i = 0; i < NUM_WAL_VERSIONS; i++)
		if (wal_versions[i].page_magic == magic)
			return &wal_versions[i];
	return NULL;
}

/*
 * Who asks: PG_VERSION and global/pg_control in the working directory tell
 * the data directory's major version and system identifier (the first
 * field of pg_control in every version).  Run outside a data directory, we
 * check against the version we were built for, and cannot check the system
 * identifier.
 */
static void
identify_server(ServerIdentity *server)
{
	FILE	   *f;
	int			fd;
	int			major;
	uint64_t	sysid;

	memset(server, 0, sizeof(*server));
	server->version = find_wal_version_by_major(WV_SERVER_MAJOR);
	server->version_source = "the server this program was built for";

	f = fopen("PG_VERSION", "r");
	if (f != NULL)
	{
		if (fscanf(f, "%d", &major) == 1)
		{
			const WalVersion *v = find_wal_version_by_major(major);

			if (v == NULL)
				report_error("the data directory is of PostgreSQL %d, which pg_walvault does not support",
							 major);
			server->version = v;
			server->version_source = "PG_VERSION of the data directory";
		}
		fclose(f);
	}

	fd = open("global/pg_control", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
	{
		if (read(fd, &sysid, sizeof(sysid)) == (ssize_t) sizeof(sysid))
		{
			server->have_sysid = true;
			server->sysid = sysid;
		}
		close(fd);
	}
}

static void
check_segment(const RestoreSink *sink, const ServerIdentity *server)
{
	WvXLogLongPageHeaderData hdr;
	const WalVersion *written_by;

	if (!is_valid_segment_size(sink->nbytes))
		report_error("restored content of \"%s\" has invalid size %llu bytes: a WAL segment must be a power of two between 1 MB and 1 GB",
					 sink->src_path, (unsigned long long) sink->nbytes);

	/* any valid size is far larger than the header, but be careful */
	if (sink->head_len < sizeof(hdr))
		report_error("restored content of \"%s\" is too short for a WAL page header",
					 sink->src_path);

	/* copy out, since head has no particular alignment */
	memcpy(&hdr, sink->head, sizeof(hdr));

	if (hdr.std.xlp_magic != server->version->page_magic)
	{
		written_by = find_wal_version_by_magic(hdr.std.xlp_magic);
		if (written_by != NULL)
			report_error("restored content of \"%s\" is WAL of PostgreSQL %d, but the server is PostgreSQL %d (from %s)",
						 sink->src_path, written_by->major,
						 server->version->major, server->version_source);
		report_error("restored content of \"%s\" has invalid WAL page magic 0x%04X, expected 0x%04X for PostgreSQL %d",
					 sink->src_path, (unsigned int) hdr.std.xlp_magic,
					 (unsigned int) server->version->page_magic,
					 server->version->major);
	}

	if ((hdr.std.xlp_info & WV_XLP_LONG_HEADER) == 0)
		report_error("restored content of \"%s\" does not start with a long WAL page header",
					 sink->src_path);

	if (server->have_sysid && hdr.xlp_sysid != server->sysid)
		report_error("restored content of \"%s\" is WAL of database system %llu, but the server is database system %llu",
					 sink->src_path, (unsigned long long) hdr.xlp_sysid,
					 (unsigned long long) server->sysid);

	if ((uint64_t) hdr.xlp_seg_size != sink->nbytes)
		report_error("restored content of \"%s\" has %llu bytes, but its page header gives WAL segment size %u",
					 sink->src_path, (unsigned long long) sink->nbytes,
					 (unsigned int) hdr.xlp_seg_size);
}

/*
 * fsync the directory containing path, so that a rename into it survives a
 * crash.
 */
static void
fsync_parent_dir(const char *path)
{
	char		dir[WV_MAXPATH];
	char	   *slash;
	int			fd;

	/* path was already checked to fit, via the longer temp_path */
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
		report_error("could not open directory \"%s\": %s",
					 dir, strerror(errno));

	/*
	 * Some file systems cannot fsync a directory and say so with EBADF or
	 * EINVAL; there is nothing more we could do there, so don't fail.
	 */
	if (fsync(fd) != 0 && errno != EBADF && errno != EINVAL)
		report_error("could not fsync directory \"%s\": %s",
					 dir, strerror(errno));
	close(fd);
}

/*
 * Restore the already opened archive file src_fd to dest.
 */
static void
restore_file(int src_fd, const char *src_path, const ArchiveVariant *variant,
			 WalvaultFileKind kind, const char *dest)
{
	RestoreSink sink;
	int			rc;

	rc = snprintf(temp_path, sizeof(temp_path), "%s.%s.tmp",
				  dest, PROGRAM_NAME);
	if (rc < 0 || (size_t) rc >= sizeof(temp_path))
		report_error("destination path \"%s\" is too long", dest);

	memset(&sink, 0, sizeof(sink));
	sink.src_path = src_path;
	if (kind == WALVAULT_FILE_SEGMENT || kind == WALVAULT_FILE_PARTIAL)
		sink.limit = WV_WAL_SEG_MAX_SIZE;

	/*
	 * A temporary file left over by an earlier run that was killed is simply
	 * truncated and reused.
	 */
	sink.fd = open(temp_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (sink.fd < 0)
		report_error("could not create file \"%s\": %s",
					 temp_path, strerror(errno));
	temp_created = true;

	if (variant->method == WALVAULT_CODEC_NONE)
		copy_plain(src_fd, src_path, &sink);
	else
		decompress_file(src_fd, src_path, variant, &sink);

	if (kind == WALVAULT_FILE_SEGMENT || kind == WALVAULT_FILE_PARTIAL)
	{
		ServerIdentity server;

		identify_server(&server);
		check_segment(&sink, &server);
	}

	/* the data must be on disk before the rename makes it visible */
	if (fsync(sink.fd) != 0)
		report_error("could not fsync file \"%s\": %s",
					 temp_path, strerror(errno));
	if (close(sink.fd) != 0)
		report_error("could not close file \"%s\": %s",
					 temp_path, strerror(errno));

	if (rename(temp_path, dest) != 0)
		report_error("could not rename file \"%s\" to \"%s\": %s",
					 temp_path, dest, strerror(errno));
	temp_created = false;

	/*
	 * If this fails, dest is complete but its directory entry may not be
	 * durable.  We report the error and leave dest alone: the server does
	 * not use a file whose restore_command failed, and it removes or
	 * overwrites it on the next attempt.
	 */
	fsync_parent_dir(dest);

	report_verbose("restored \"%s\" from \"%s\" (%s, %llu bytes)",
				   dest, src_path, variant->description,
				   (unsigned long long) sink.nbytes);
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{"directory", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 1},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	const char *archive_dir = NULL;
	const char *file_name;
	const char *dest;
	WalvaultFileKind kind;
	struct stat st;
	char		src_path[WV_MAXPATH];
	const ArchiveVariant *variant = NULL;
	int			src_fd = -1;
	int			c;
	size_t		i;

	/*
	 * Handle --help and --version first, as other PostgreSQL programs do.
	 * getopt returns '?' for unknown options too, so an explicit -? can only
	 * be told apart here.
	 */
	if (argc > 1)
	{
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0)
		{
			usage();
			exit(EXIT_RESTORED);
		}
		if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		{
			printf("%s (pg_walvault) %s\n", PROGRAM_NAME, PROGRAM_VERSION);
			exit(EXIT_RESTORED);
		}
	}

	while ((c = getopt_long(argc, argv, "d:vV", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				archive_dir = optarg;
				break;
			case 'v':
				verbose = true;
				break;
			case 1:
				/* --help somewhere other than first */
				usage();
				exit(EXIT_RESTORED);
				break;
			case 'V':
				printf("%s (pg_walvault) %s\n", PROGRAM_NAME, PROGRAM_VERSION);
				exit(EXIT_RESTORED);
				break;
			default:
				/* getopt_long already complained */
				fprintf(stderr, "%s: hint: Try \"%s --help\" for more information.\n",
						PROGRAM_NAME, PROGRAM_NAME);
				exit(EXIT_ERROR);
		}
	}

	if (argc - optind < 2)
		usage_error("too few command-line arguments");
	if (argc - optind > 2)
		usage_error("too many command-line arguments (first is \"%s\")",
					argv[optind + 2]);
	if (archive_dir == NULL || archive_dir[0] == '\0')
		usage_error("no archive directory specified");

	file_name = argv[optind];
	dest = argv[optind + 1];

	kind = walvault_classify_name(file_name);
	if (kind == WALVAULT_FILE_INVALID)
		report_error("invalid file name \"%s\": not a WAL segment, partial segment, timeline history or backup history file name",
					 file_name);
	if (dest[0] == '\0')
		report_error("destination path must not be empty");

	if (stat(archive_dir, &st) != 0)
		report_error("could not access archive directory \"%s\": %s",
					 archive_dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		report_error("archive directory \"%s\" is not a directory",
					 archive_dir);

	for (i = 0; i < NUM_ARCHIVE_VARIANTS; i++)
	{
		int			rc;

		rc = snprintf(src_path, sizeof(src_path), "%s/%s%s",
					  archive_dir, file_name, archive_variants[i].suffix);
		if (rc < 0 || (size_t) rc >= sizeof(src_path))
			report_error("archive directory path \"%s\" is too long",
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
			report_error("could not open file \"%s\": %s",
						 src_path, strerror(errno));
	}

	if (variant == NULL)
	{
		report_verbose("file \"%s\" not found in archive directory \"%s\"",
					   file_name, archive_dir);
		exit(EXIT_NOT_FOUND);
	}

	if (fstat(src_fd, &st) != 0)
		report_error("could not stat file \"%s\": %s",
					 src_path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		report_error("archive file \"%s\" is not a regular file", src_path);

	/* an uncompressed segment's size can be checked before copying it */
	if (variant->method == WALVAULT_CODEC_NONE &&
		(kind == WALVAULT_FILE_SEGMENT || kind == WALVAULT_FILE_PARTIAL) &&
		!is_valid_segment_size((uint64_t) st.st_size))
		report_error("archive file \"%s\" has invalid size %llu bytes: a WAL segment must be a power of two between 1 MB and 1 GB",
					 src_path, (unsigned long long) st.st_size);

	restore_file(src_fd, src_path, variant, kind, dest);
	close(src_fd);

	return EXIT_RESTORED;
}

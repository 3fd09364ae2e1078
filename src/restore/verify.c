/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  pg_walvault_restore --verify: can this archive be restored from?
 *
 * A WAL archive is only worth what a restore from it proves.  --verify
 * reads every file of an archive (a directory or an object store, a copy
 * or the live one; no server is needed) and says, per timeline, what a
 * restore would meet: the first and last segment, every gap, every file
 * that the checks of a restore refuse, segments of another database
 * system, whether the timeline history files chain, and for each base
 * backup (found by its .backup file) whether it can be restored to the
 * newest WAL of its timeline.  The last line is one summary a monitoring
 * system can alert on; the exit status is 0 for a clean archive, 1 when
 * problems were found, and above 1 when the verify itself could not be
 * done (usage, an archive that cannot be listed).
 *
 * The checks are exactly those of a restore: each file goes through
 * wv_fetch() with no destination, which finds it under the names a
 * restore tries, decompresses it and checks it as it would be restored
 * (wal_check.c), writing nothing.  Those checks end the process on the
 * first error (report.c), so each file is checked in a process of its
 * own, forked per file, at most -j at a time.  A worker reports over a
 * pipe that is its stderr: the lines of report.c, plus lines of ours
 * starting with '@' (the segment's system identifier and size, read from
 * its first page as the bytes go by; the text of history and backup
 * files), and its exit status says how it went: 0 checked (or removed
 * meanwhile, said by a line), 1 an I/O error (report.c's "not available"
 * class, turned on in workers for that purpose), anything else a file a
 * restore would refuse.  Results are kept per file and the report is built
 * once every file is checked, so that it does not depend on -j nor on the
 * order in which workers finish.
 *
 * Which database system: the one of the data directory given with -D (or
 * PGDATA), whose PG_VERSION and pg_control the checks of a restore then
 * use, exactly as a restore_command run there; else the one given with
 * --system-identifier, else the one most segments have.  Without a data
 * directory the workers run in "/", so that no data directory is picked
 * up by accident.
 *
 * The same report is printed as text, or with --format=tsv as rows of six
 * tab-separated fields (timeline, kind, first, last, status, detail; empty
 * is NULL), which the SQL function pg_walvault_verify() reads
 * (verify_sql.c), with progress rows while files are checked.
 *
 * src/restore/verify.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "restore.h"

/* What a worker said about its file */
typedef enum VerifyResult
{
	VR_PENDING,
	VR_OK,						/* a restore would take it */
	VR_GONE,					/* removed since it was listed */
	VR_BAD,						/* a restore would refuse it */
	VR_UNREADABLE				/* an I/O error (permissions, the store) */
} VerifyResult;

/* Bytes of the first page a worker reads the system identifier from */
#define VERIFY_HEADER_LEN	40
/* Offsets in XLogLongPageHeaderData (see wal_check.c) */
#define VERIFY_SYSID_OFF	24
#define VERIFY_SEGSIZE_OFF	32
/* Most text kept of a history or backup file */
#define VERIFY_TEXT_MAX		(64 * 1024)
/* Most output kept of a worker (its messages) */
#define VERIFY_OUTPUT_MAX	(16 * 1024)
/* Segment size assumed when no segment header could be read */
#define VERIFY_DEFAULT_SEG_SIZE (16 * 1024 * 1024)

/* One file of the archive, under its restore name */
typedef struct VerifyFile
{
	char		name[WALVAULT_MAX_NAME_LEN + 1];
	WalvaultFileKind kind;
	unsigned int stored;		/* bit per WalvaultCodecMethod it is under */
	uint32_t	tli;
	uint32_t	log;			/* segments, partials and backups: */
	uint32_t	seg;			/* from the name */
	uint64_t	segno;			/* once the segment size is known */

	VerifyResult result;
	bool		have_header;
	uint64_t	sysid;
	uint32_t	seg_size;
	uint64_t	bytes;
	char	   *message;		/* why it is bad or unreadable */
	char	   *text;			/* history and backup files */
} VerifyFile;

/* A running worker */
typedef struct VerifyWorker
{
	pid_t		pid;
	int			fd;				/* read end of its pipe */
	VerifyFile *file;
	char	   *out;
	size_t		out_len;
} VerifyWorker;

/* A history file, parsed */
typedef struct VerifyHistory
{
	uint32_t	tli;
	VerifyFile *file;
	int			nentries;
	uint32_t   *parents;		/* ancestors, oldest first */
	uint64_t   *switchpoints;	/* where each one ended */
	bool		parsed;
} VerifyHistory;

/* Counts for the summary */
typedef struct VerifyCounts
{
	int			timelines;
	long		segments;
	long		partials;
	long		histories;
	long		backups;
	long		restorable;
	long		gaps;
	long		missing;
	long		bad;
	long		unreadable;
	long		other_system;
	long		broken_histories;
	long		ignored;
	uint64_t	bytes;
} VerifyCounts;

static const RestoreOptions *vopts_restore;
static const VerifyOptions *vopts;

static VerifyFile *files;
static size_t nfiles;
static size_t files_size;

static VerifyWorker *workers;
static int	nworkers;
/* pids of running workers, for the signal handler */
static volatile pid_t *worker_pids;

static uint32_t seg_size;
static uint64_t archive_sysid;
static bool have_archive_sysid;
static bool have_marker;
static VerifyCounts counts;

/* the archive description, for the report */
static char archive_desc[WV_MAXPATH + 64];

static void verify_out(const char *fmt,...) WV_PRINTF_ATTR(1, 2);
static void verify_row(uint32_t tli, const char *kind, const char *first,
					   const char *last, const char *status,
					   const char *fmt,...) WV_PRINTF_ATTR(6, 7);
static char *verify_strdup(const char *s);
static void verify_add_name(const char *stored_name);
static void verify_list_directory(const char *dir);
static bool verify_list_s3_one(void *arg, const char *name, uint64_t size);
static void verify_list_s3(const RestoreOptions *opts);
static int	verify_compare_files(const void *a, const void *b);
static void verify_start_worker(VerifyWorker *w, VerifyFile *file);
static void verify_worker_main(VerifyFile *file) WV_NORETURN;
static void verify_worker_done(VerifyWorker *w);
static void verify_run_workers(void);
static void verify_signal_handler(int signo);
static void verify_segment_name(char *out, uint32_t tli, uint64_t segno);
static void verify_choose_sysid(void);
static void verify_report(void) WV_NORETURN;

/*
 * Print a line of the report on stdout.  Only used for text output: rows
 * go through verify_row().
 */
static void
verify_out(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/*
 * One row of the report: as tab-separated fields with --format=tsv (tabs
 * and newlines in the detail made spaces, so that a row stays a line),
 * else as a line of text.
 */
static void
verify_row(uint32_t tli, const char *kind, const char *first,
		   const char *last, const char *status, const char *fmt,...)
{
	char		detail[4096];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);

	if (vopts->format == VERIFY_FORMAT_TSV)
	{
		for (char *p = detail; *p; p++)
			if (*p == '\t' || *p == '\n' || *p == '\r')
				*p = ' ';
		if (tli != 0)
			printf("%u", (unsigned int) tli);
		printf("\t%s\t%s\t%s\t%s\t%s\n", kind, first ? first : "",
			   last ? last : "", status ? status : "", detail);
		fflush(stdout);
		return;
	}

	if (strcmp(kind, "progress") == 0)
		return;					/* -v says it on stderr */
	if (tli != 0)
		printf("timeline %u: ", (unsigned int) tli);
	if (strcmp(kind, "timeline") == 0 || strcmp(kind, "gap") == 0)
		printf("%s%s to %s: %s", strcmp(kind, "gap") == 0 ? "gap " : "",
			   first ? first : "", last ? last : "", status);
	else if (strcmp(kind, "summary") == 0 || strcmp(kind, "system") == 0)
	{
		printf("%s\n", detail);
		return;
	}
	else
		printf("%s %s: %s", kind, first ? first : "", status);
	if (detail[0] != '\0')
		printf(" (%s)", detail);
	putchar('\n');
}

static char *
verify_strdup(const char *s)
{
	char	   *copy = strdup(s);

	if (copy == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	return copy;
}

static uint32_t
verify_hex8(const char *s)
{
	char		buf[9];

	memcpy(buf, s, 8);
	buf[8] = '\0';
	return (uint32_t) strtoul(buf, NULL, 16);
}

/*
 * A name in the archive: the name a restore asks for, maybe plus the suffix
 * of a compression method.  Anything else (the archivers' temporary files,
 * other files) is counted as ignored.
 */
static void
verify_add_name(const char *stored_name)
{
	char		name[WALVAULT_MAX_NAME_LEN + 8];
	WalvaultCodecMethod method = WALVAULT_CODEC_NONE;
	WalvaultFileKind kind = WALVAULT_FILE_INVALID;
	size_t		len = strlen(stored_name);
	VerifyFile *f;

	if (stored_name[0] == '.')
		return;					/* an archiver's temporary file */
	if (strcmp(stored_name, WALVAULT_MARKER_NAME) == 0)
	{
		have_marker = true;
		return;
	}
	for (int i = 0; i < WALVAULT_CODEC_LOOKUP_COUNT; i++)
	{
		WalvaultCodecMethod m = walvault_codec_lookup_order[i];
		const char *suffix = walvault_codec_suffix(m);
		size_t		slen = strlen(suffix);

		if (len >= sizeof(name) || len < slen ||
			strcmp(stored_name + len - slen, suffix) != 0)
			continue;
		memcpy(name, stored_name, len - slen);
		name[len - slen] = '\0';
		kind = walvault_classify_name(name);
		if (kind != WALVAULT_FILE_INVALID)
		{
			method = m;
			break;
		}
	}
	if (kind == WALVAULT_FILE_INVALID)
	{
		counts.ignored++;
		wv_verbose("ignoring \"%s\": not the name of an archived file",
				   stored_name);
		return;
	}

	/* the same name under several suffixes is merged once sorted */
	if (nfiles == files_size)
	{
		size_t		newsize = files_size == 0 ? 1024 : files_size * 2;
		VerifyFile *n = realloc(files, newsize * sizeof(VerifyFile));

		if (n == NULL)
			wv_error(WV_ERROR_IO, "out of memory");
		files = n;
		files_size = newsize;
	}
	f = &files[nfiles++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%.*s", WALVAULT_MAX_NAME_LEN, name);
	f->kind = kind;
	f->stored = 1u << method;
	f->tli = verify_hex8(name);
	if (kind != WALVAULT_FILE_TL_HISTORY)
	{
		f->log = verify_hex8(name + 8);
		f->seg = verify_hex8(name + 16);
	}
}

static void
verify_list_directory(const char *dir)
{
	DIR		   *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		wv_error(WV_ERROR_IO, "could not open archive directory \"%s\": %s",
				 dir, strerror(errno));
	for (;;)
	{
		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		verify_add_name(de->d_name);
	}
	if (errno != 0)
		wv_error(WV_ERROR_IO, "could not read archive directory \"%s\": %s",
				 dir, strerror(errno));
	closedir(d);
}

static bool
verify_list_s3_one(void *arg, const char *name, uint64_t size)
{
	(void) arg;
	(void) size;
	verify_add_name(name);
	return true;
}

/*
 * List the store with a client of our own, set up as source_s3.c sets up
 * the one it fetches with; workers make their own (no libcurl handle is
 * shared across fork()).
 */
static void
verify_list_s3(const RestoreOptions *opts)
{
	WvS3Config	config;
	WvS3Hooks	hooks;
	WvS3Error	err;
	WvS3	   *s3;
	char		errbuf[256];

	wv_s3_config_init(&config);
	config.bucket = opts->s3_bucket;
	config.prefix = opts->s3_prefix;
	if (opts->s3_endpoint != NULL)
		config.endpoint = opts->s3_endpoint;
	if (opts->s3_region != NULL)
		config.region = opts->s3_region;
	if (opts->s3_uri_style >= 0)
		config.uri_style = (WvS3UriStyle) opts->s3_uri_style;
	if (opts->s3_ca_file != NULL)
		config.ca_file = opts->s3_ca_file;
	if (opts->s3_connect_timeout_ms > 0)
		config.connect_timeout_ms = opts->s3_connect_timeout_ms;
	if (opts->s3_stall_timeout_ms > 0)
		config.stall_timeout_ms = opts->s3_stall_timeout_ms;
	signal(SIGPIPE, SIG_IGN);	/* see source_s3_open() */

	memset(&hooks, 0, sizeof(hooks));
	s3 = wv_s3_create(&config, &hooks, errbuf, sizeof(errbuf));
	if (s3 == NULL)
		wv_error(WV_ERROR_USAGE, "could not set up the object store client for %s: %s",
				 opts->archive_url, errbuf);
	snprintf(archive_desc, sizeof(archive_desc), "%s", wv_s3_describe(s3));
	if (wv_s3_list(s3, "", verify_list_s3_one, NULL, &err) != WV_S3_OK)
		wv_error(WV_ERROR_IO, "could not list the objects of %s: %s (%d attempt%s)",
				 wv_s3_describe(s3), err.message, err.attempts,
				 err.attempts == 1 ? "" : "s");
	wv_s3_free(s3);
}

static int
verify_compare_files(const void *a, const void *b)
{
	return strcmp(((const VerifyFile *) a)->name,
				  ((const VerifyFile *) b)->name);
}

/*
 * What a worker sees of its file's content on the way to wv_fetch()'s
 * checks: the stored bytes, decompressed here too (only as far as needed)
 * to read the first page's header of a segment, or the text of a history
 * or backup file.  Nothing here judges the file: wv_fetch() does.
 */
typedef struct VerifyPeek
{
	RestoreSource source;		/* first: the interface */
	RestoreSource *inner;
	VerifyFile *file;
	const WvContentSink *sink;	/* wv_fetch()'s */
	WalvaultCodec *codec;		/* NULL: stored as is */
	bool		codec_failed;
	size_t		want;			/* bytes of content to keep */
	unsigned char *buf;
	size_t		len;
	bool		header_sent;
} VerifyPeek;

static const char *
verify_peek_describe(RestoreSource *source)
{
	VerifyPeek *p = (VerifyPeek *) source;

	return p->inner->describe(p->inner);
}

static bool
verify_peek_find(RestoreSource *source, const char *file_name,
				 WvStoredFile *file)
{
	VerifyPeek *p = (VerifyPeek *) source;
	bool		found = p->inner->find(p->inner, file_name, file);

	if (found)
	{
		const char *err;

		if (file->method != WALVAULT_CODEC_NONE)
		{
			p->codec = walvault_codec_create(file->method, false);
			if (p->codec == NULL ||
				!walvault_codec_start(p->codec, 0, 0, &err))
				p->codec_failed = true;
		}
	}
	return found;
}

/* Keep content until we have what we want; false stops the decoder. */
static bool
verify_peek_keep(void *arg, const char *data, size_t len)
{
	VerifyPeek *p = (VerifyPeek *) arg;
	size_t		n = p->want - p->len;

	if (n > len)
		n = len;
	memcpy(p->buf + p->len, data, n);
	p->len += n;
	return p->len < p->want;
}

static void
verify_peek_data(void *arg, const unsigned char *data, size_t len)
{
	VerifyPeek *p = (VerifyPeek *) arg;

	if (p->len < p->want && !p->codec_failed)
	{
		const char *err;

		if (p->codec == NULL)
			verify_peek_keep(p, (const char *) data, len);
		else if (!walvault_codec_feed(p->codec, (const char *) data, len,
									  false, verify_peek_keep, p, &err))
			p->codec_failed = true;	/* wv_fetch() will say why */
	}

	/* the header is sent before the checks may end the process */
	if (!p->header_sent && p->len >= VERIFY_HEADER_LEN &&
		(p->file->kind == WALVAULT_FILE_SEGMENT ||
		 p->file->kind == WALVAULT_FILE_PARTIAL))
	{
		uint64_t	sysid;
		uint32_t	size;

		memcpy(&sysid, p->buf + VERIFY_SYSID_OFF, sizeof(sysid));
		memcpy(&size, p->buf + VERIFY_SEGSIZE_OFF, sizeof(size));
		fprintf(stderr, "@hdr %llu %u\n", (unsigned long long) sysid,
				(unsigned int) size);
		p->header_sent = true;
	}
	p->sink->data(p->sink->arg, data, len);
}

static void
verify_peek_restart(void *arg)
{
	VerifyPeek *p = (VerifyPeek *) arg;
	const char *err;

	p->len = 0;
	if (p->codec != NULL && !walvault_codec_start(p->codec, 0, 0, &err))
		p->codec_failed = true;
	p->sink->restart(p->sink->arg);
}

static bool
verify_peek_read(RestoreSource *source, const WvStoredFile *file,
				 const WvContentSink *sink)
{
	VerifyPeek *p = (VerifyPeek *) source;
	WvContentSink mine;

	p->sink = sink;
	mine.arg = p;
	mine.data = verify_peek_data;
	mine.restart = verify_peek_restart;
	return p->inner->read(p->inner, file, &mine);
}

/*
 * A worker: check one file as a restore would, and say how it went (see
 * the file header).  stderr is the pipe to the parent.
 */
static void
verify_worker_main(VerifyFile *file)
{
	VerifyPeek	peek;
	uint64_t	bytes = 0;
	int			rc;

	memset(&peek, 0, sizeof(peek));
	peek.source.describe = verify_peek_describe;
	peek.source.find = verify_peek_find;
	peek.source.read = verify_peek_read;
	peek.file = file;
	peek.want = (file->kind == WALVAULT_FILE_SEGMENT ||
				 file->kind == WALVAULT_FILE_PARTIAL) ?
		VERIFY_HEADER_LEN : VERIFY_TEXT_MAX;
	peek.buf = malloc(peek.want);
	if (peek.buf == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	peek.inner = wv_open_source(vopts_restore);

	rc = wv_fetch(&peek.source, file->name, file->kind, NULL, 0, &bytes);
	if (rc != WV_EXIT_RESTORED)
	{
		fprintf(stderr, "@gone\n");
		exit(0);
	}

	if (file->kind == WALVAULT_FILE_TL_HISTORY ||
		file->kind == WALVAULT_FILE_BACKUP_HISTORY)
	{
		/* its text, a line at a time, control characters made '?' */
		size_t		i = 0;

		while (i < peek.len)
		{
			fputs("@text ", stderr);
			for (; i < peek.len && peek.buf[i] != '\n'; i++)
				fputc(peek.buf[i] < 32 || peek.buf[i] == 127 ? '?' :
					  peek.buf[i], stderr);
			fputc('\n', stderr);
			i++;
		}
	}
	fprintf(stderr, "@ok %llu\n", (unsigned long long) bytes);
	exit(0);
}

static void
verify_start_worker(VerifyWorker *w, VerifyFile *file)
{
	int			fds[2];
	pid_t		pid;

	if (pipe(fds) != 0)
		wv_error(WV_ERROR_IO, "could not create a pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		wv_error(WV_ERROR_IO, "could not fork a worker: %s", strerror(errno));
	if (pid == 0)
	{
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
#ifdef __linux__
		/* die with the verify; it may already be gone */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(WV_EXIT_FATAL);
#endif
		for (int i = 0; i < nworkers; i++)
			if (workers[i].pid > 0)
				close(workers[i].fd);
		close(fds[0]);
		/* nothing of a worker may end up in the report */
		if (dup2(fds[1], STDERR_FILENO) < 0 ||
			dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(WV_EXIT_FATAL);
		close(fds[1]);
		/* an I/O error exits with 1, a content error with 255 */
		wv_set_verbose(false);
		wv_set_io_errors_not_available(true);
		verify_worker_main(file);
	}
	close(fds[1]);
	memset(w, 0, sizeof(*w));
	w->pid = pid;
	w->fd = fds[0];
	w->file = file;
	worker_pids[w - workers] = pid;
}

/* A worker's pipe is at its end: collect what it said, and its status. */
static void
verify_worker_done(VerifyWorker *w)
{
	VerifyFile *f = w->file;
	char	   *line;
	char	   *next;
	char	   *message = NULL;
	size_t		message_len = 0;
	char	   *text = NULL;
	size_t		text_len = 0;
	bool		ok = false;
	bool		gone = false;
	int			status;

	close(w->fd);
	while (waitpid(w->pid, &status, 0) < 0)
	{
		if (errno != EINTR)
			wv_error(WV_ERROR_IO, "could not wait for worker %ld: %s",
					 (long) w->pid, strerror(errno));
	}
	worker_pids[w - workers] = 0;

	for (line = w->out; line != NULL && *line != '\0'; line = next)
	{
		unsigned long long sysid;
		unsigned int size;
		unsigned long long bytes;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (sscanf(line, "@hdr %llu %u", &sysid, &size) == 2)
		{
			f->have_header = true;
			f->sysid = sysid;
			f->seg_size = size;
		}
		else if (sscanf(line, "@ok %llu", &bytes) == 1)
		{
			ok = true;
			f->bytes = bytes;
		}
		else if (strcmp(line, "@gone") == 0)
			gone = true;
		else if (strncmp(line, "@text ", 6) == 0)
		{
			size_t		n = strlen(line + 6);
			char	   *t = realloc(text, text_len + n + 2);

			if (t == NULL)
				wv_error(WV_ERROR_IO, "out of memory");
			text = t;
			memcpy(text + text_len, line + 6, n);
			text_len += n;
			text[text_len++] = '\n';
			text[text_len] = '\0';
		}
		else if (line[0] != '\0')
		{
			/* report.c's lines, without the program's name */
			const char *m = line;
			size_t		n;
			char	   *t;

			if (strncmp(m, PROGRAM_NAME ": ", strlen(PROGRAM_NAME) + 2) == 0)
				m += strlen(PROGRAM_NAME) + 2;
			if (strncmp(m, "error: ", 7) == 0)
				m += 7;
			if (strncmp(m, "detail: reported as not available", 33) == 0)
				continue;
			n = strlen(m);
			t = realloc(message, message_len + n + 3);
			if (t == NULL)
				wv_error(WV_ERROR_IO, "out of memory");
			message = t;
			if (message_len > 0)
			{
				memcpy(message + message_len, "; ", 2);
				message_len += 2;
			}
			memcpy(message + message_len, m, n);
			message_len += n;
			message[message_len] = '\0';
		}
	}
	free(w->out);
	w->out = NULL;

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && (ok || gone))
	{
		f->result = ok ? VR_OK : VR_GONE;
		f->text = text;
		free(message);
	}
	else
	{
		char		buf[64];

		f->result = WIFEXITED(status) && WEXITSTATUS(status) == WV_EXIT_NOT_FOUND ?
			VR_UNREADABLE : VR_BAD;
		if (message == NULL)
		{
			if (WIFSIGNALED(status))
				snprintf(buf, sizeof(buf), "the check was killed by signal %d",
						 WTERMSIG(status));
			else
				snprintf(buf, sizeof(buf), "the check exited with status %d",
						 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			message = verify_strdup(buf);
		}
		f->message = message;
		free(text);
	}
	w->pid = 0;
}

/*
 * SIGTERM, SIGINT, SIGHUP: take the workers along (on Linux they would die
 * with us anyway), then die of the same signal.
 */
static void
verify_signal_handler(int signo)
{
	for (int i = 0; i < nworkers; i++)
		if (worker_pids[i] > 0)
			kill(worker_pids[i], SIGKILL);
	signal(signo, SIG_DFL);
	raise(signo);
}

/* Check every file, at most -j at a time. */
static void
verify_run_workers(void)
{
	struct pollfd *pfds;
	size_t		next = 0;
	size_t		done = 0;
	int			running = 0;
	int			last_step = -1;
	char		done_s[32];
	char		total_s[32];

	nworkers = vopts->jobs;
	workers = calloc(nworkers, sizeof(VerifyWorker));
	worker_pids = calloc(nworkers, sizeof(pid_t));
	pfds = calloc(nworkers, sizeof(struct pollfd));
	if (workers == NULL || worker_pids == NULL || pfds == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	signal(SIGTERM, verify_signal_handler);
	signal(SIGINT, verify_signal_handler);
	signal(SIGHUP, verify_signal_handler);
	signal(SIGQUIT, verify_signal_handler);

	while (next < nfiles || running > 0)
	{
		int			step;

		for (int i = 0; i < nworkers && next < nfiles; i++)
		{
			if (workers[i].pid != 0)
				continue;
			verify_start_worker(&workers[i], &files[next++]);
			running++;
		}

		for (int i = 0; i < nworkers; i++)
		{
			pfds[i].fd = workers[i].pid != 0 ? workers[i].fd : -1;
			pfds[i].events = POLLIN;
			pfds[i].revents = 0;
		}
		if (poll(pfds, nworkers, -1) < 0)
		{
			if (errno == EINTR)
				continue;
			wv_error(WV_ERROR_IO, "could not poll: %s", strerror(errno));
		}

		for (int i = 0; i < nworkers; i++)
		{
			VerifyWorker *w = &workers[i];
			char		buf[4096];
			ssize_t		n;

			if (w->pid == 0 || pfds[i].revents == 0)
				continue;
			n = read(w->fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n > 0)
			{
				/* a worker says little; more than that is cut */
				size_t		keep = (size_t) n;
				char	   *o;

				if (w->out_len + keep > VERIFY_OUTPUT_MAX + VERIFY_TEXT_MAX)
					keep = VERIFY_OUTPUT_MAX + VERIFY_TEXT_MAX - w->out_len;
				o = realloc(w->out, w->out_len + keep + 1);
				if (o == NULL)
					wv_error(WV_ERROR_IO, "out of memory");
				w->out = o;
				memcpy(w->out + w->out_len, buf, keep);
				w->out_len += keep;
				w->out[w->out_len] = '\0';
				continue;
			}

			/* end of its pipe: it is done */
			verify_worker_done(w);
			wv_verbose("%s: %s", w->file->name,
					   w->file->message ? w->file->message : "checked");
			running--;
			done++;
		}

		/* progress: every 5% of the files */
		step = (int) (done * 20 / (nfiles > 0 ? nfiles : 1));
		if (step != last_step)
		{
			last_step = step;
			snprintf(done_s, sizeof(done_s), "%zu", done);
			snprintf(total_s, sizeof(total_s), "%zu", nfiles);
			verify_row(0, "progress", done_s, total_s, NULL,
					   "checked %zu of %zu files", done, nfiles);
			wv_verbose("checked %zu of %zu files", done, nfiles);
		}
	}
	free(pfds);
}

static void
verify_segment_name(char *out, uint32_t tli, uint64_t segno)
{
	uint64_t	per_id = UINT64_C(0x100000000) / seg_size;

	snprintf(out, WALVAULT_MAX_NAME_LEN + 1, "%08X%08X%08X",
			 (unsigned int) tli, (unsigned int) (segno / per_id),
			 (unsigned int) (segno % per_id));
}

/*
 * The segment size (the one most segments' headers give) and the database
 * system the archive is of: the data directory's, the one given, else the
 * one most segments have.
 */
static int
verify_compare_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The value most often in vals[0..n) (sorted here), and how often. */
static uint64_t
verify_most_common(uint64_t *vals, size_t n, size_t *count)
{
	uint64_t	best = 0;

	*count = 0;
	qsort(vals, n, sizeof(uint64_t), verify_compare_u64);
	for (size_t i = 0, run = 0; i < n; i++)
	{
		run = (i > 0 && vals[i] == vals[i - 1]) ? run + 1 : 1;
		if (run > *count)
		{
			*count = run;
			best = vals[i];
		}
	}
	return best;
}

static void
verify_choose_sysid(void)
{
	uint64_t   *sysids = malloc((nfiles + 1) * sizeof(uint64_t));
	uint64_t   *sizes = malloc((nfiles + 1) * sizeof(uint64_t));
	size_t		nheaders = 0;
	size_t		best_n;
	size_t		best_size_n;
	uint64_t	best;
	uint64_t	best_size;

	if (sysids == NULL || sizes == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	for (size_t i = 0; i < nfiles; i++)
	{
		if (!files[i].have_header)
			continue;
		sysids[nheaders] = files[i].sysid;
		sizes[nheaders] = wv_is_valid_segment_size(files[i].seg_size) ?
			files[i].seg_size : 0;
		nheaders++;
	}
	best = verify_most_common(sysids, nheaders, &best_n);
	best_size = verify_most_common(sizes, nheaders, &best_size_n);
	free(sysids);
	free(sizes);

	seg_size = best_size != 0 ? (uint32_t) best_size : VERIFY_DEFAULT_SEG_SIZE;
	if (vopts->pgdata != NULL)
		verify_row(0, "system", NULL, NULL, "ok",
				   "system identifier %llu, from the data directory \"%s\"",
				   (unsigned long long) archive_sysid, vopts->pgdata);
	else if (have_archive_sysid)
		verify_row(0, "system", NULL, NULL, "ok",
				   "system identifier %llu, as given", (unsigned long long) archive_sysid);
	else if (best_n > 0)
	{
		archive_sysid = best;
		have_archive_sysid = true;
		verify_row(0, "system", NULL, NULL, "ok",
				   "system identifier %llu, the one %zu of the %zu segments with a readable header have (-D or --system-identifier checks against a cluster)",
				   (unsigned long long) best, best_n, nheaders);
	}
	else
		verify_row(0, "system", NULL, NULL, "unknown",
				   "no segment header could be read: the system identifier is not checked");
	if (best_size == 0)
		verify_row(0, "system", NULL, NULL, "unknown",
				   "no segment header gives the segment size: %u bytes assumed",
				   (unsigned int) seg_size);

	for (size_t i = 0; i < nfiles; i++)
	{
		VerifyFile *f = &files[i];
		uint64_t	per_id = UINT64_C(0x100000000) / seg_size;

		f->segno = (uint64_t) f->log * per_id + f->seg;
	}
}

/* Parse a timeline history file's text as the server does. */
static void
verify_parse_history(VerifyHistory *h)
{
	char	   *text = h->file->text;
	char	   *line;
	char	   *next;
	int			cap = 0;

	h->parsed = true;
	for (line = text; line != NULL && *line != '\0'; line = next)
	{
		unsigned int tli;
		unsigned int hi;
		unsigned int lo;
		char	   *p = line;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		while (*p == ' ' || *p == '?')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (sscanf(p, "%u?%X/%X", &tli, &hi, &lo) != 3 &&
			sscanf(p, "%u %X/%X", &tli, &hi, &lo) != 3)
		{
			h->parsed = false;
			continue;
		}
		if (h->nentries == cap)
		{
			cap = cap == 0 ? 8 : cap * 2;
			h->parents = realloc(h->parents, cap * sizeof(uint32_t));
			h->switchpoints = realloc(h->switchpoints, cap * sizeof(uint64_t));
			if (h->parents == NULL || h->switchpoints == NULL)
				wv_error(WV_ERROR_IO, "out of memory");
		}
		h->parents[h->nentries] = tli;
		h->switchpoints[h->nentries] = ((uint64_t) hi << 32) | lo;
		h->nentries++;
	}
}

/* The file of timeline tli and segment segno, if listed. */
static VerifyFile *
verify_find_segment(uint32_t tli, uint64_t segno, WalvaultFileKind kind)
{
	char		name[WALVAULT_MAX_NAME_LEN + 1];
	VerifyFile	key;

	verify_segment_name(name, tli, segno);
	if (kind == WALVAULT_FILE_PARTIAL)
		strcat(name, ".partial");
	memset(&key, 0, sizeof(key));
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, files, nfiles, sizeof(VerifyFile),
				   verify_compare_files);
}

static VerifyHistory *
verify_find_history(VerifyHistory *hist, int nhist, uint32_t tli)
{
	for (int i = 0; i < nhist; i++)
		if (hist[i].tli == tli)
			return &hist[i];
	return NULL;
}

/* Is this file one a restore can use (checked, of the right system)? */
static bool
verify_usable(const VerifyFile *f)
{
	return f != NULL && f->result == VR_OK &&
		(!f->have_header || !have_archive_sysid || f->sysid == archive_sysid);
}

static const char *
verify_kind_name(WalvaultFileKind kind)
{
	switch (kind)
	{
		case WALVAULT_FILE_SEGMENT:
			return "segment";
		case WALVAULT_FILE_PARTIAL:
			return "partial";
		case WALVAULT_FILE_TL_HISTORY:
			return "history";
		case WALVAULT_FILE_BACKUP_HISTORY:
			return "backup";
		default:
			return "file";
	}
}

/*
 * The name a restore reads a file under: the first of its names, in lookup
 * order, that the listing had.
 */
static const char *
verify_stored_name(const VerifyFile *f, char *buf, size_t size)
{
	for (int i = 0; i < WALVAULT_CODEC_LOOKUP_COUNT; i++)
	{
		WalvaultCodecMethod m = walvault_codec_lookup_order[i];

		if (f->stored & (1u << m))
		{
			snprintf(buf, size, "%s%s", f->name, walvault_codec_suffix(m));
			return buf;
		}
	}
	return f->name;
}

/*
 * A file a restore would refuse, or of another system: count it into c,
 * and with print say why.
 */
static void
verify_file_problem(VerifyFile *f, VerifyCounts *c, bool print)
{
	const char *kind = verify_kind_name(f->kind);
	char		buf[WALVAULT_MAX_NAME_LEN + 8];
	const char *stored = verify_stored_name(f, buf, sizeof(buf));

	if ((f->result == VR_OK || f->result == VR_BAD) && f->have_header &&
		have_archive_sysid && f->sysid != archive_sysid)
	{
		/* with -D, the checks of a restore refused it for that already */
		c->other_system++;
		if (print)
			verify_row(f->tli, kind, stored, f->name, "other-system",
					   "WAL of database system %llu, not %llu",
					   (unsigned long long) f->sysid,
					   (unsigned long long) archive_sysid);
	}
	else if (f->result == VR_BAD)
	{
		c->bad++;
		if (print)
			verify_row(f->tli, kind, stored, f->name, "bad", "%s", f->message);
	}
	else if (f->result == VR_UNREADABLE)
	{
		c->unreadable++;
		if (print)
			verify_row(f->tli, kind, stored, f->name, "unreadable", "%s",
					   f->message);
	}
}

/*
 * The segments (and partials, and backup files) of one timeline, from
 * begin to end: count into c its segments, gaps and files a restore would
 * refuse, with rows if print; the first and last segment.
 */
static void
verify_timeline(VerifyFile *begin, VerifyFile *end, VerifyCounts *c,
				VerifyFile **first, VerifyFile **last, bool print)
{
	*first = NULL;
	*last = NULL;
	for (VerifyFile *f = begin; f < end; f++)
	{
		if (f->kind == WALVAULT_FILE_SEGMENT && f->result != VR_GONE)
		{
			if (*last != NULL && f->segno > (*last)->segno + 1)
			{
				char		a[WALVAULT_MAX_NAME_LEN + 1];
				char		b[WALVAULT_MAX_NAME_LEN + 1];
				uint64_t	n = f->segno - (*last)->segno - 1;

				c->gaps++;
				c->missing += (long) n;
				verify_segment_name(a, f->tli, (*last)->segno + 1);
				verify_segment_name(b, f->tli, f->segno - 1);
				if (print)
					verify_row(f->tli, "gap", a, b, "missing",
							   "%llu segment%s", (unsigned long long) n,
							   n == 1 ? "" : "s");
			}
			if (*first == NULL)
				*first = f;
			*last = f;
			c->segments++;
		}
		else if (f->kind == WALVAULT_FILE_PARTIAL && f->result != VR_GONE)
			c->partials++;
		if (f->kind != WALVAULT_FILE_BACKUP_HISTORY)
			verify_file_problem(f, c, print);
	}
}

/*
 * The segment a line of a backup history file names, as in
 * "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)", into
 * name (WALVAULT_MAX_NAME_LEN + 1 bytes).
 */
static bool
verify_backup_segment(const char *text, const char *label, char *name)
{
	const char *p = text != NULL ? strstr(text, label) : NULL;
	const char *eol;

	if (p == NULL)
		return false;
	eol = strchr(p, '\n');
	p = strstr(p, "(file ");
	if (p == NULL || (eol != NULL && p > eol) || strlen(p + 6) < 24)
		return false;
	snprintf(name, WALVAULT_MAX_NAME_LEN + 1, "%.24s", p + 6);
	return walvault_classify_name(name) == WALVAULT_FILE_SEGMENT;
}

/* Build and print the report from the results. */
static void
verify_report(void)
{
	VerifyHistory *hist;
	int			nhist = 0;
	char		summary[1024];
	bool		clean;

	hist = calloc(nfiles + 1, sizeof(VerifyHistory));
	if (hist == NULL)
		wv_error(WV_ERROR_IO, "out of memory");
	for (size_t i = 0; i < nfiles; i++)
	{
		if (files[i].kind == WALVAULT_FILE_TL_HISTORY)
		{
			hist[nhist].tli = files[i].tli;
			hist[nhist].file = &files[i];
			if (files[i].result == VR_OK)
				verify_parse_history(&hist[nhist]);
			nhist++;
		}
		if (files[i].result == VR_OK)
			counts.bytes += files[i].bytes;
	}

	/*
	 * Timelines, in the order of their segments' names: first and last,
	 * then gaps and the files a restore would refuse.  A first pass counts
	 * what the timeline's line says.
	 */
	for (size_t i = 0; i < nfiles;)
	{
		size_t		end = i;
		VerifyCounts tc;
		VerifyFile *first = NULL;
		VerifyFile *last = NULL;
		long		problems;

		while (end < nfiles && files[end].tli == files[i].tli &&
			   files[end].kind != WALVAULT_FILE_TL_HISTORY)
			end++;
		if (end == i)
		{
			i++;				/* a history file: below */
			continue;
		}
		memset(&tc, 0, sizeof(tc));
		verify_timeline(files + i, files + end, &tc, &first, &last, false);
		if (tc.segments + tc.partials > 0)
		{
			problems = tc.gaps + tc.bad + tc.unreadable + tc.other_system;
			counts.timelines++;
			verify_row(files[i].tli, "timeline", first ? first->name : NULL,
					   last ? last->name : NULL,
					   problems == 0 ? "ok" : "problems",
					   "%ld segment%s, %ld partial, %ld problem%s",
					   tc.segments, tc.segments == 1 ? "" : "s",
					   tc.partials, problems, problems == 1 ? "" : "s");
		}
		verify_timeline(files + i, files + end, &counts, &first, &last, true);
		i = end;
	}

	/*
	 * History files: each names its ancestors; the parent's history must
	 * be there and agree, and the parent must have the segment the switch
	 * point is on.  A timeline with WAL but no history file cannot be
	 * followed either.
	 */
	for (int h = 0; h < nhist; h++)
	{
		VerifyHistory *vh = &hist[h];
		VerifyFile *f = vh->file;
		char		why[512] = "";
		uint32_t	parent = 0;

		counts.histories++;
		if (f->result != VR_OK)
		{
			verify_file_problem(f, &counts, true);
			counts.broken_histories++;
			continue;
		}
		if (!vh->parsed || vh->nentries == 0)
			snprintf(why, sizeof(why), "cannot be parsed as a timeline history");
		else
		{
			uint64_t	sw = vh->switchpoints[vh->nentries - 1];
			uint64_t	swseg = (sw > 0 ? sw - 1 : 0) / seg_size;
			VerifyHistory *ph;

			parent = vh->parents[vh->nentries - 1];
			for (int e = 0; e < vh->nentries && why[0] == '\0'; e++)
				if (vh->parents[e] >= vh->tli ||
					(e > 0 && vh->parents[e] <= vh->parents[e - 1]))
					snprintf(why, sizeof(why),
							 "names timeline %u, which cannot precede timeline %u",
							 vh->parents[e], vh->tli);
			if (why[0] == '\0' && parent > 1)
			{
				ph = verify_find_history(hist, nhist, parent);
				if (ph == NULL)
					snprintf(why, sizeof(why),
							 "the history file of parent timeline %u, %08X.history, is not in the archive",
							 parent, parent);
				else if (ph->file->result != VR_OK || !ph->parsed)
					snprintf(why, sizeof(why),
							 "the history file of parent timeline %u cannot be read",
							 parent);
				else
				{
					bool		agree = ph->nentries == vh->nentries - 1;

					for (int e = 0; agree && e < ph->nentries; e++)
						agree = ph->parents[e] == vh->parents[e] &&
							ph->switchpoints[e] == vh->switchpoints[e];
					if (!agree)
						snprintf(why, sizeof(why),
								 "its ancestors differ from those %08X.history gives",
								 parent);
				}
			}
			if (why[0] == '\0' &&
				!verify_usable(verify_find_segment(parent, swseg,
												   WALVAULT_FILE_SEGMENT)) &&
				!verify_usable(verify_find_segment(parent, swseg,
												   WALVAULT_FILE_PARTIAL)))
			{
				char		name[WALVAULT_MAX_NAME_LEN + 1];

				verify_segment_name(name, parent, swseg);
				snprintf(why, sizeof(why),
						 "the switch point %X/%08X is on segment %s, which parent timeline %u does not have",
						 (unsigned int) (sw >> 32), (unsigned int) sw, name,
						 parent);
			}
		}
		if (why[0] != '\0')
		{
			counts.broken_histories++;
			verify_row(vh->tli, "history", f->name, NULL, "broken", "%s", why);
		}
		else
			verify_row(vh->tli, "history", f->name, NULL, "chains",
					   "parent timeline %u, switched at %X/%08X", parent,
					   (unsigned int) (vh->switchpoints[vh->nentries - 1] >> 32),
					   (unsigned int) vh->switchpoints[vh->nentries - 1]);
	}
	for (size_t i = 0, reported = 0; i < nfiles; i++)
	{
		VerifyFile *f = &files[i];
		char		hname[32];

		if (f->tli <= 1 || f->tli == reported ||
			(f->kind != WALVAULT_FILE_SEGMENT &&
			 f->kind != WALVAULT_FILE_PARTIAL) ||
			verify_find_history(hist, nhist, f->tli) != NULL)
			continue;
		reported = f->tli;
		counts.broken_histories++;
		snprintf(hname, sizeof(hname), "%08X.history", f->tli);
		verify_row(f->tli, "history", hname, NULL, "broken",
				   "timeline %u has WAL but no history file: a restore cannot follow it",
				   f->tli);
	}

	/*
	 * Base backups: restorable when every segment of their timeline from
	 * their start to the newest is there and usable, and the newest is not
	 * before their end.
	 */
	for (size_t i = 0; i < nfiles; i++)
	{
		VerifyFile *f = &files[i];
		char		start[WALVAULT_MAX_NAME_LEN + 1] = "";
		char		stop[WALVAULT_MAX_NAME_LEN + 1] = "";
		char		why[512] = "";
		VerifyFile *newest = NULL;

		if (f->kind != WALVAULT_FILE_BACKUP_HISTORY)
			continue;
		counts.backups++;
		if (f->result != VR_OK)
		{
			verify_file_problem(f, &counts, true);
			verify_row(f->tli, "backup", f->name, NULL, "not-restorable",
					   "its backup history file cannot be read");
			continue;
		}
		if (!verify_backup_segment(f->text, "START WAL LOCATION:", start) ||
			!verify_backup_segment(f->text, "STOP WAL LOCATION:", stop))
		{
			verify_row(f->tli, "backup", f->name, NULL, "not-restorable",
					   "no START and STOP WAL LOCATION in its backup history file");
			continue;
		}
		else
		{
			uint32_t	tli = verify_hex8(start);
			uint64_t	per_id = UINT64_C(0x100000000) / seg_size;
			uint64_t	s = (uint64_t) verify_hex8(start + 8) * per_id +
				verify_hex8(start + 16);
			uint64_t	e = (uint64_t) verify_hex8(stop + 8) * per_id +
				verify_hex8(stop + 16);
			VerifyFile *sf = verify_find_segment(tli, s, WALVAULT_FILE_SEGMENT);

			/* the newest segment of its timeline */
			if (sf != NULL)
				for (VerifyFile *g = sf; g < files + nfiles && g->tli == tli &&
					 g->kind != WALVAULT_FILE_TL_HISTORY; g++)
					if (g->kind == WALVAULT_FILE_SEGMENT && g->result != VR_GONE)
						newest = g;
			if (sf == NULL || sf->result == VR_GONE)
				snprintf(why, sizeof(why), "its start segment %s is not in the archive",
						 start);
			else
			{
				uint64_t	expect = s;

				for (VerifyFile *g = sf; g <= newest; g++)
				{
					if (g->kind != WALVAULT_FILE_SEGMENT || g->result == VR_GONE)
						continue;
					if (g->segno != expect)
					{
						char		a[WALVAULT_MAX_NAME_LEN + 1];

						verify_segment_name(a, tli, expect);
						snprintf(why, sizeof(why), "segment %s is missing", a);
						break;
					}
					if (!verify_usable(g))
					{
						snprintf(why, sizeof(why), "segment %s is %s", g->name,
								 g->result == VR_OK ? "of another system" :
								 g->result == VR_BAD ? "bad" : "unreadable");
						break;
					}
					expect++;
				}
				if (why[0] == '\0' && newest->segno < e)
					snprintf(why, sizeof(why),
							 "its stop segment %s is not archived yet", stop);
			}
			if (why[0] == '\0')
			{
				counts.restorable++;
				verify_row(tli, "backup", start, stop, "restorable",
						   "%s, to %s", f->name, newest->name);
			}
			else
				verify_row(tli, "backup", start, stop, "not-restorable",
						   "%s: %s", f->name, why);
		}
	}

	/*
	 * Without its marker, a restore stops at the end of the archive instead
	 * of ending recovery there (marker.c): a problem, unless restores use
	 * --no-marker-check, as this verify was told.
	 */
	if (!have_marker)
		verify_row(0, "marker", WALVAULT_MARKER_NAME, NULL,
				   wv_marker_is_required() ? "absent" : "not-required",
				   "the archive has no marker: a restore from it says \"not in the archive\" only with --no-marker-check");

	clean = counts.gaps == 0 && counts.bad == 0 && counts.unreadable == 0 &&
		counts.other_system == 0 && counts.broken_histories == 0 &&
		counts.restorable == counts.backups &&
		(have_marker || !wv_marker_is_required());
	snprintf(summary, sizeof(summary),
			 "pg_walvault verify: status=%s marker=%s timelines=%d segments=%ld partial=%ld histories=%ld backups=%ld restorable=%ld gaps=%ld missing_segments=%ld bad=%ld unreadable=%ld other_system=%ld broken_histories=%ld ignored=%ld bytes=%llu",
			 clean ? "clean" : "problems",
			 have_marker ? "present" : "absent",
			 counts.timelines, counts.segments,
			 counts.partials, counts.histories, counts.backups,
			 counts.restorable, counts.gaps, counts.missing, counts.bad,
			 counts.unreadable, counts.other_system, counts.broken_histories,
			 counts.ignored, (unsigned long long) counts.bytes);
	verify_row(0, "summary", NULL, NULL, clean ? "clean" : "problems",
			   "%s", summary);
	fflush(stdout);
	free(hist);
	exit(clean ? VERIFY_EXIT_CLEAN : VERIFY_EXIT_PROBLEMS);
}

/*
 * --verify: list the archive, check every file, report.  Never returns.
 */
void
verify_main(RestoreOptions *opts, const VerifyOptions *verify)
{
	struct timespec t0;
	struct timespec t1;

	vopts_restore = opts;
	vopts = verify;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	/* relative paths stay right once we are in another directory */
	if (opts->archive_dir != NULL)
	{
		char	   *abs = realpath(opts->archive_dir, NULL);

		if (abs == NULL)
			wv_error(WV_ERROR_IO, "could not access archive directory \"%s\": %s",
					 opts->archive_dir, strerror(errno));
		opts->archive_dir = abs;
		snprintf(archive_desc, sizeof(archive_desc),
				 "archive directory \"%s\"", abs);
	}
	if (opts->s3_ca_file != NULL && opts->s3_ca_file[0] != '/')
	{
		char	   *abs = realpath(opts->s3_ca_file, NULL);

		if (abs == NULL)
			wv_error(WV_ERROR_IO, "could not access file \"%s\": %s",
					 opts->s3_ca_file, strerror(errno));
		opts->s3_ca_file = abs;
	}

	/*
	 * The checks of a restore read PG_VERSION and global/pg_control in the
	 * working directory: the data directory given, else none.
	 */
	if (verify->pgdata != NULL)
	{
		ServerIdentity server;

		if (chdir(verify->pgdata) != 0)
			wv_error(WV_ERROR_IO, "could not change directory to \"%s\": %s",
					 verify->pgdata, strerror(errno));
		wv_identify_server(&server);
		if (!server.have_sysid)
			wv_error(WV_ERROR_USAGE,
					 "could not read the system identifier of data directory \"%s\" from global/pg_control",
					 verify->pgdata);
		archive_sysid = server.sysid;
		have_archive_sysid = true;
	}
	else
	{
		if (chdir("/") != 0)
			wv_error(WV_ERROR_IO, "could not change directory to \"/\": %s",
					 strerror(errno));
		if (verify->have_sysid)
		{
			archive_sysid = verify->sysid;
			have_archive_sysid = true;
		}
	}

	if (opts->archive_url != NULL)
		verify_list_s3(opts);
	else
		verify_list_directory(opts->archive_dir);
	if (nfiles > 0)
	{
		size_t		n = 1;

		qsort(files, nfiles, sizeof(VerifyFile), verify_compare_files);
		for (size_t i = 1; i < nfiles; i++)
		{
			if (strcmp(files[i].name, files[n - 1].name) == 0)
				files[n - 1].stored |= files[i].stored;
			else
				files[n++] = files[i];
		}
		nfiles = n;
	}

	if (verify->format == VERIFY_FORMAT_TEXT)
		verify_out("pg_walvault verify of %s: %zu files", archive_desc,
				   nfiles);
	verify_run_workers();
	verify_choose_sysid();

	clock_gettime(CLOCK_MONOTONIC, &t1);
	wv_verbose("checked %zu files in %.1f s", nfiles,
			   (double) (t1.tv_sec - t0.tv_sec) +
			   (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
	verify_report();
}

/*-------------------------------------------------------------------------
 *
 * pg_walvault_restore.c
 *	  restore_command that fetches files from a pg_walvault archive.
 *
 * The pg_walvault archive workers store each archived file under its
 * original name in the archive, a directory or an S3-compatible object
 * store, either as is or compressed with zstd, lz4 (frame format) or gzip,
 * under the suffix ".zst", ".lz4" or ".gz".  This program is meant to be
 * used as (with the full path: the server's PATH rarely holds PostgreSQL's
 * bindir)
 *
 *		restore_command = '/usr/lib/postgresql/15/bin/pg_walvault_restore -d /archive %f %p'
 *		restore_command = '/usr/lib/postgresql/15/bin/pg_walvault_restore -u s3://bucket/main %f %p'
 *
 * It finds the file under one of those names, decompresses and checks it,
 * and puts it in place atomically (fetch.c, wal_check.c; the archive is
 * read through source_directory.c or source_s3.c).  With -j N, a detached
 * prefetcher fetches the next N segments in parallel while the server
 * replays (prefetch_client.c, prefetcher.c).  With --verify, it restores
 * nothing but checks every file of an archive as a restore would, and
 * reports what a restore from it would meet (verify.c).
 *
 * Exit statuses (restore.h):
 *
 *	0	the file was restored to the destination path.
 *	1	the file is not in the archive under any of the names: the normal
 *		way archive recovery learns that it reached the end of the archived
 *		WAL, so nothing is printed unless -v is given.  For an object store,
 *		only when the store itself answers that no such object exists.
 *	255	anything else, with a message on stderr and no destination file
 *		left behind: a usage error, an invalid file name, a corrupt file or
 *		a segment that is not the one asked for, an I/O error, an object
 *		store that refuses us, fails or cannot be reached.  The server
 *		stops recovery with FATAL on it (any status above 125), rather than
 *		taking the file for the end of the archive and promoting.  With
 *		--retry-io-errors, a standby's I/O and store errors exit with 1
 *		instead.
 *
 * This file only parses the command line.
 *
 * src/restore/pg_walvault_restore.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "restore.h"

#define PROGRAM_VERSION WALVAULT_VERSION

static void usage(void);
static long parse_int(const char *opt, const char *value, long min, long max);
static uint64_t parse_size(const char *opt, const char *value);
static void parse_archive(RestoreOptions *opts);
static void parse_options(int argc, char **argv, RestoreOptions *opts);
static void parse_verify_options(int argc, char **argv, RestoreOptions *opts);

/* --verify and its options; verify.jobs is 0 unless --verify was given */
static bool verify_mode = false;
static VerifyOptions verify;

static void
usage(void)
{
	printf("%s restores files from a pg_walvault archive: a directory,\n"
		   "or an S3-compatible object store.\n"
		   "It is meant to be used as a PostgreSQL restore_command.\n\n",
		   PROGRAM_NAME);
	printf("Usage:\n");
	printf("  %s [OPTION]... -d DIRECTORY FILE DESTINATION\n", PROGRAM_NAME);
	printf("  %s [OPTION]... -u s3://BUCKET[/PREFIX] FILE DESTINATION\n",
		   PROGRAM_NAME);
	printf("  %s --verify [OPTION]... -d DIRECTORY | -u s3://BUCKET[/PREFIX]\n\n",
		   PROGRAM_NAME);
	printf("Options:\n");
	printf("  -d, --directory=DIR      archive directory to restore from\n");
	printf("  -u, --url=s3://BUCKET[/PREFIX]\n"
		   "                           object store bucket (and key prefix) to restore from\n");
	printf("  -j, --jobs=N             prefetch the next N segments in parallel (1-%d)\n",
		   WV_MAX_JOBS);
	printf("      --idle-timeout=SECS  prefetcher exits after SECS without a request\n"
		   "                           (default %d)\n", WV_DEFAULT_IDLE_TIMEOUT);
	printf("      --spool-size=SIZE    most bytes of prefetched segments, with kB, MB\n"
		   "                           or GB (default 1GB)\n");
	printf("      --retry-io-errors    on a standby, report I/O and object store errors as\n"
		   "                           \"not available\" (exit 1) so that the server retries\n"
		   "                           later\n");
	printf("      --no-marker-check    say \"not in the archive\" even if the archive has no\n"
		   "                           marker (archives of pg_walvault before 1.3, or\n"
		   "                           written by an archive_command)\n");
	printf("  -v, --verbose            report what is done on stderr\n");
	printf("  -V, --version            output version information, then exit\n");
	printf("  -?, --help               show this help, then exit\n\n");
	printf("Object store options (with -u):\n");
	printf("      --s3-endpoint=URL    endpoint (default: AWS_ENDPOINT_URL_S3, then\n"
		   "                           AWS_ENDPOINT_URL, then AWS's for the region)\n");
	printf("      --s3-region=REGION   region (default: AWS_REGION, then\n"
		   "                           AWS_DEFAULT_REGION, then us-east-1)\n");
	printf("      --s3-uri-style=host|path\n"
		   "                           bucket in the host name (default, AWS) or in the\n"
		   "                           path (most other stores)\n");
	printf("      --s3-ca-file=FILE    also trust the CA certificates in FILE\n");
	printf("      --s3-connect-timeout=SECS\n"
		   "                           give up connecting after SECS (default %d)\n",
		   WV_S3_DEFAULT_CONNECT_TIMEOUT_MS / 1000);
	printf("      --s3-stall-timeout=SECS\n"
		   "                           give up when no byte moved for SECS (default %d)\n",
		   WV_S3_DEFAULT_STALL_TIMEOUT_MS / 1000);
	printf("\nVerify options (check every file of the archive, restore nothing):\n");
	printf("      --verify             report per timeline the first and last segment,\n"
		   "                           gaps, files a restore would refuse, segments of\n"
		   "                           another system, history files that do not chain,\n"
		   "                           and which base backups can be restored\n");
	printf("  -j, --jobs=N             check N files in parallel (default %d)\n",
		   VERIFY_DEFAULT_JOBS);
	printf("  -D, --pgdata=DATADIR     check against this data directory's system\n"
		   "                           (default: PGDATA, else the system most\n"
		   "                           segments are of)\n");
	printf("      --system-identifier=ID\n"
		   "                           check against this system identifier instead\n");
	printf("      --format=text|tsv    a report to read, or rows of tab-separated\n"
		   "                           fields (timeline, kind, first, last, status,\n"
		   "                           detail)\n");
	printf("\nCredentials are taken from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"
		   "(with AWS_SESSION_TOKEN), else from the shared credentials file\n"
		   "(~/.aws/credentials), else from the EC2 instance's role.\n\n");
	printf("FILE is looked up as FILE, FILE.zst, FILE.lz4 and FILE.gz, in that\n"
		   "order, and written to DESTINATION.\n\n");
	printf("Examples (use the full path of the program, see pg_config --bindir):\n"
		   "  restore_command = '/usr/lib/postgresql/15/bin/%s -j 4 -d /mnt/archive %%f %%p'\n"
		   "  restore_command = '/usr/lib/postgresql/15/bin/%s -u s3://bucket/main %%f %%p'\n\n",
		   PROGRAM_NAME, PROGRAM_NAME);
	printf("Exit status is 0 if the file was restored, 1 if it is not in the\n"
		   "archive (for an object store: if the store answers so), and %d on\n"
		   "any error, which stops recovery.\n", WV_EXIT_FATAL);
	printf("With --verify: 0 if the archive is clean, 1 if problems were found,\n"
		   "and more if the archive could not be verified; the last line is a\n"
		   "summary (status=clean or status=problems) to alert on.\n");
}

static long
parse_int(const char *opt, const char *value, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
		wv_usage_error("invalid value \"%s\" for option %s: must be an integer from %ld to %ld",
					   value, opt, min, max);
	return v;
}

/* A size: a number of bytes, or with kB, MB or GB (powers of 1024). */
static uint64_t
parse_size(const char *opt, const char *value)
{
	char	   *end;
	unsigned long long v;
	uint64_t	mult = 1;

	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno != 0 || end == value || !isdigit((unsigned char) value[0]))
		wv_usage_error("invalid value \"%s\" for option %s", value, opt);
	if (strcmp(end, "kB") == 0)
		mult = UINT64_C(1024);
	else if (strcmp(end, "MB") == 0)
		mult = UINT64_C(1024) * 1024;
	else if (strcmp(end, "GB") == 0)
		mult = UINT64_C(1024) * 1024 * 1024;
	else if (*end != '\0')
		wv_usage_error("invalid value \"%s\" for option %s: the units are kB, MB and GB",
					   value, opt);
	if (v == 0 || v > UINT64_C(1) << 50 || v * mult < WV_WAL_SEG_MIN_SIZE)
		wv_usage_error("invalid value \"%s\" for option %s: must be at least 1MB",
					   value, opt);
	return v * mult;
}

/*
 * Which archive: exactly one of -d and -u, and the object store options
 * only with -u.  An S3 URL and the settings the client can check are
 * checked now, so that a restore_command that can never work says so
 * before it looks for anything.
 */
static void
parse_archive(RestoreOptions *opts)
{
	char		err[256];

	if (opts->archive_dir != NULL && opts->archive_url != NULL)
		wv_usage_error("options -d and -u cannot be used together: give one archive");
	if (opts->archive_dir == NULL && opts->archive_url == NULL)
		wv_usage_error("no archive specified: give -d DIRECTORY or -u s3://BUCKET/PREFIX");
	if (opts->archive_dir != NULL)
	{
		if (opts->archive_dir[0] == '\0')
			wv_usage_error("no archive directory specified");
		if (opts->s3_endpoint != NULL || opts->s3_region != NULL ||
			opts->s3_uri_style >= 0 || opts->s3_ca_file != NULL ||
			opts->s3_connect_timeout_ms != 0 || opts->s3_stall_timeout_ms != 0)
			wv_usage_error("the --s3-* options need -u, not -d");
		return;
	}

	if (!wv_s3_parse_url(opts->archive_url, opts->s3_bucket,
						 sizeof(opts->s3_bucket), opts->s3_prefix,
						 sizeof(opts->s3_prefix), err, sizeof(err)))
		wv_usage_error("invalid value \"%s\" for option -u/--url: %s",
					   opts->archive_url, err);
	if (opts->s3_endpoint != NULL && opts->s3_endpoint[0] != '\0' &&
		!wv_s3_check_endpoint(opts->s3_endpoint, err, sizeof(err)))
		wv_usage_error("invalid value \"%s\" for option --s3-endpoint: %s",
					   opts->s3_endpoint, err);
	if (opts->s3_region != NULL && opts->s3_region[0] != '\0' &&
		!wv_s3_check_region(opts->s3_region, err, sizeof(err)))
		wv_usage_error("invalid value \"%s\" for option --s3-region: %s",
					   opts->s3_region, err);
}

static void
parse_options(int argc, char **argv, RestoreOptions *opts)
{
	static const struct option long_options[] = {
		{"directory", required_argument, NULL, 'd'},
		{"url", required_argument, NULL, 'u'},
		{"jobs", required_argument, NULL, 'j'},
		{"idle-timeout", required_argument, NULL, 2},
		{"spool-size", required_argument, NULL, 3},
		{"retry-io-errors", no_argument, NULL, 4},
		{"no-marker-check", no_argument, NULL, 30},
		{"s3-endpoint", required_argument, NULL, 5},
		{"s3-region", required_argument, NULL, 6},
		{"s3-uri-style", required_argument, NULL, 7},
		{"s3-ca-file", required_argument, NULL, 8},
		{"s3-connect-timeout", required_argument, NULL, 9},
		{"s3-stall-timeout", required_argument, NULL, 10},
		{"verify", no_argument, NULL, 40},
		{"pgdata", required_argument, NULL, 'D'},
		{"system-identifier", required_argument, NULL, 41},
		{"format", required_argument, NULL, 42},
		{"help", no_argument, NULL, 1},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	memset(opts, 0, sizeof(*opts));
	opts->idle_timeout = WV_DEFAULT_IDLE_TIMEOUT;
	opts->spool_size = WV_DEFAULT_SPOOL_SIZE;
	opts->s3_uri_style = -1;

	while ((c = getopt_long(argc, argv, "d:u:j:D:vV", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opts->archive_dir = optarg;
				break;
			case 'u':
				opts->archive_url = optarg;
				break;
			case 'j':
				opts->jobs = (int) parse_int("-j/--jobs", optarg, 1, WV_MAX_JOBS);
				break;
			case 2:
				opts->idle_timeout = (int) parse_int("--idle-timeout", optarg,
													 1, 24 * 3600);
				break;
			case 3:
				opts->spool_size = parse_size("--spool-size", optarg);
				break;
			case 4:
				opts->retry_io_errors = true;
				break;
			case 30:
				wv_marker_set_required(false);
				break;
			case 5:
				/* empty: the default, as the client takes it */
				opts->s3_endpoint = optarg;
				break;
			case 6:
				/* empty: the default too */
				opts->s3_region = optarg;
				break;
			case 7:
				if (strcmp(optarg, "host") == 0)
					opts->s3_uri_style = WV_S3_URI_HOST;
				else if (strcmp(optarg, "path") == 0)
					opts->s3_uri_style = WV_S3_URI_PATH;
				else
					wv_usage_error("invalid value \"%s\" for option --s3-uri-style: must be \"host\" or \"path\"",
								   optarg);
				break;
			case 8:
				if (optarg[0] == '\0')
					wv_usage_error("invalid value \"\" for option --s3-ca-file: must be a file name");
				opts->s3_ca_file = optarg;
				break;
			case 9:
				opts->s3_connect_timeout_ms =
					parse_int("--s3-connect-timeout", optarg, 1, 3600) * 1000;
				break;
			case 10:
				opts->s3_stall_timeout_ms =
					parse_int("--s3-stall-timeout", optarg, 1, 3600) * 1000;
				break;
			case 'v':
				opts->verbose = true;
				break;
			case 40:
				verify_mode = true;
				break;
			case 'D':
				if (optarg[0] == '\0')
					wv_usage_error("invalid value \"\" for option -D/--pgdata: must be a directory");
				verify.pgdata = optarg;
				break;
			case 41:
				{
					char	   *end;

					errno = 0;
					verify.sysid = strtoull(optarg, &end, 10);
					if (errno != 0 || end == optarg || *end != '\0' ||
						!isdigit((unsigned char) optarg[0]))
						wv_usage_error("invalid value \"%s\" for option --system-identifier: must be a number",
									   optarg);
					verify.have_sysid = true;
				}
				break;
			case 42:
				if (strcmp(optarg, "text") == 0)
					verify.format = VERIFY_FORMAT_TEXT;
				else if (strcmp(optarg, "tsv") == 0)
					verify.format = VERIFY_FORMAT_TSV;
				else
					wv_usage_error("invalid value \"%s\" for option --format: must be \"text\" or \"tsv\"",
								   optarg);
				break;
			case 1:
				/* --help somewhere other than first */
				usage();
				exit(WV_EXIT_RESTORED);
				break;
			case 'V':
				printf("%s (pg_walvault) %s\n", PROGRAM_NAME, PROGRAM_VERSION);
				exit(WV_EXIT_RESTORED);
				break;
			default:
				/* getopt_long already complained */
				fprintf(stderr, "%s: hint: Try \"%s --help\" for more information.\n",
						PROGRAM_NAME, PROGRAM_NAME);
				exit(WV_EXIT_FATAL);
		}
	}

	if (verify_mode)
	{
		parse_verify_options(argc, argv, opts);
		return;
	}
	if (verify.pgdata != NULL || verify.have_sysid ||
		verify.format != VERIFY_FORMAT_TEXT)
		wv_usage_error("options -D, --system-identifier and --format need --verify");
	if (argc - optind < 2)
		wv_usage_error("too few command-line arguments");
	if (argc - optind > 2)
		wv_usage_error("too many command-line arguments (first is \"%s\")",
					   argv[optind + 2]);
	parse_archive(opts);

	opts->file_name = argv[optind];
	opts->dest = argv[optind + 1];
	opts->kind = walvault_classify_name(opts->file_name);
	if (opts->kind == WALVAULT_FILE_INVALID)
		wv_error(WV_ERROR_USAGE,
				 "invalid file name \"%s\": not a WAL segment, partial segment, timeline history or backup history file name",
				 opts->file_name);
	if (opts->dest[0] == '\0')
		wv_error(WV_ERROR_USAGE, "destination path must not be empty");
}

/*
 * --verify takes an archive and no file; -j is how many files are checked
 * at once.  The data directory's system, if there is one, is the one to
 * check against: -D, else PGDATA.
 */
static void
parse_verify_options(int argc, char **argv, RestoreOptions *opts)
{
	if (argc - optind > 0)
		wv_usage_error("too many command-line arguments (first is \"%s\"): --verify takes no file",
					   argv[optind]);
	if (opts->retry_io_errors)
		wv_usage_error("option --retry-io-errors cannot be used with --verify");
	parse_archive(opts);
	if (verify.pgdata != NULL && verify.have_sysid)
		wv_usage_error("options -D and --system-identifier cannot be used together");
	if (verify.pgdata == NULL && !verify.have_sysid)
	{
		const char *pgdata = getenv("PGDATA");

		if (pgdata != NULL && pgdata[0] != '\0')
			verify.pgdata = pgdata;
	}
	verify.jobs = opts->jobs > 0 ? opts->jobs : VERIFY_DEFAULT_JOBS;
}

int
main(int argc, char **argv)
{
	RestoreOptions opts;
	struct stat st;

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
			exit(WV_EXIT_RESTORED);
		}
		if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		{
			printf("%s (pg_walvault) %s\n", PROGRAM_NAME, PROGRAM_VERSION);
			exit(WV_EXIT_RESTORED);
		}
	}

	parse_options(argc, argv, &opts);
	wv_set_verbose(opts.verbose);
	if (verify_mode)
		verify_main(&opts, &verify);
	/* I/O errors are "not available" only where that cannot end recovery */
	wv_set_io_errors_not_available(opts.retry_io_errors &&
								   stat("standby.signal", &st) == 0);
	wv_install_signal_cleanup();

	if (opts.jobs > 0)
		return prefetch_restore(&opts);
	/* no prefetcher will empty a spool a killed one left: we do */
	spool_remove_orphan();
	return wv_fetch(wv_open_source(&opts), opts.file_name, opts.kind,
					opts.dest, 0, NULL);
}

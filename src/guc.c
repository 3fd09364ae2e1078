/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The configuration parameters of pg_walvault and their check hooks.
 *
 * Every parameter can be changed with a reload: the coordinator follows a
 * new pool size, workers and the archiver read the new directory before
 * their next file.  Check hooks reject what is wrong in a value itself; what
 * depends on the outside world (does the directory exist, can we write it)
 * is only ever a WARNING, because an unmounted archive disk must never keep
 * the database from starting.
 *
 * src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "common/compression.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "compat.h"
#include "pg_walvault.h"
#include "s3_client.h"

char	   *walvault_archive_directory = NULL;
char	   *walvault_archive_command = NULL;
char	   *walvault_archive_url = NULL;
char	   *walvault_s3_endpoint = NULL;
char	   *walvault_s3_region = NULL;
int			walvault_s3_uri_style = WV_S3_URI_HOST;
char	   *walvault_s3_ca_file = NULL;
char	   *walvault_s3_storage_class = NULL;
int			walvault_s3_connect_timeout = WV_S3_DEFAULT_CONNECT_TIMEOUT_MS;
int			walvault_s3_stall_timeout = WV_S3_DEFAULT_STALL_TIMEOUT_MS;
int			walvault_max_workers = 4;
int			walvault_min_workers = 1;
int			walvault_worker_idle_timeout = 60000;
int			walvault_readahead = 64;
int			walvault_batch_size = 8;
bool		walvault_mark_done_ahead = true;
int			walvault_stats_interval = 10000;
int			walvault_history_size = 1440;
bool		walvault_save_stats = true;
char	   *walvault_compression_string = NULL;
WalvaultCompression walvault_compression = {WALVAULT_CODEC_NONE, 0};

/* Room kept after the directory name for "/" and a temporary file's name. */
#define GUC_PATH_RESERVE	(1 + WALVAULT_TEMP_NAME_LEN + 1)

static bool guc_check_archive_directory(char **newval, void **extra,
										GucSource source);
static bool guc_check_compression(char **newval, void **extra,
								  GucSource source);
static void guc_assign_compression(const char *newval, void *extra);
static bool guc_check_archive_url(char **newval, void **extra,
								  GucSource source);
static bool guc_check_s3_endpoint(char **newval, void **extra,
								  GucSource source);
static bool guc_check_s3_region(char **newval, void **extra,
								GucSource source);
static bool guc_check_s3_ca_file(char **newval, void **extra,
								 GucSource source);
static bool guc_check_s3_storage_class(char **newval, void **extra,
									   GucSource source);

static const struct config_enum_entry guc_uri_styles[] = {
	{"host", WV_S3_URI_HOST, false},
	{"path", WV_S3_URI_PATH, false},
	{NULL, 0, false}
};

void
walvault_define_gucs(void)
{
	/* what a sample costs, from the struct itself, so that it stays true */
	static char history_size_detail[128];

	snprintf(history_size_detail, sizeof(history_size_detail),
			 "A new size keeps the newest samples. Each sample takes %zu bytes of dynamic shared memory.",
			 sizeof(WalvaultSample));

	DefineCustomStringVariable("pg_walvault.archive_directory",
							   "Directory where WAL files are archived.",
							   "Must be an absolute path. Empty means archiving is not configured.",
							   &walvault_archive_directory,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_archive_directory, NULL, NULL);

	DefineCustomStringVariable("pg_walvault.archive_command",
							   "Shell command run by the archive workers to archive a WAL file, instead of copying it into pg_walvault.archive_directory.",
							   "%p is replaced by the path of the file, %f by its name, %% by a percent sign. Exit status 0 must mean the file is durable.",
							   &walvault_archive_command,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.max_workers",
							"Maximum number of archive worker processes.",
							"0 makes the archiver archive every file itself.",
							&walvault_max_workers,
							4, 0, WALVAULT_MAX_WORKERS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.min_workers",
							"Number of archive workers kept running while idle.",
							"Capped at pg_walvault.max_workers.",
							&walvault_min_workers,
							1, 0, WALVAULT_MAX_WORKERS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.worker_idle_timeout",
							"Time after which an idle archive worker above pg_walvault.min_workers exits.",
							NULL,
							&walvault_worker_idle_timeout,
							60000, 100, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.readahead",
							"Number of ready WAL files handed to the workers ahead of the one the archiver asks for.",
							NULL,
							&walvault_readahead,
							64, 0, WALVAULT_MAX_READAHEAD,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.batch_size",
							"Most queued files an archive worker archives together.",
							"Into an archive directory, a worker copies that many files, and no more than 16 MB of WAL, before it fsyncs them, and makes their names durable with one fsync of the directory. 1 archives one file at a time.",
							&walvault_batch_size,
							8, 1, WALVAULT_MAX_BATCH,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pg_walvault.mark_done_ahead",
							 "Lets the archiver mark files archived ahead done in batches.",
							 "When off, the server's archiver asks for every file and marks each done itself.",
							 &walvault_mark_done_ahead,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.stats_interval",
							"Time between two samples of the statistics history.",
							NULL,
							&walvault_stats_interval,
							10000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.history_size",
							"Number of samples kept in the statistics history.",
							history_size_detail,
							&walvault_history_size,
							1440, 10, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pg_walvault.save_stats",
							 "Save pg_walvault statistics across server shutdowns.",
							 NULL,
							 &walvault_save_stats,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("pg_walvault.compression",
							   "Compression of archived WAL files.",
							   "off, or a method (zstd, lz4, gzip) with an optional level, as in \"zstd:3\" or \"zstd:level=3\".",
							   &walvault_compression_string,
							   "off",
							   PGC_SIGHUP,
							   0,
							   guc_check_compression, guc_assign_compression,
							   NULL);

	DefineCustomStringVariable("pg_walvault.archive_url",
							   "Object store where WAL files are archived, as s3://BUCKET/PREFIX.",
							   "Objects are named PREFIX/ followed by the file name, as in the archive directory. Credentials come from the server's environment, the AWS shared credentials file or instance metadata, never from a setting.",
							   &walvault_archive_url,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_archive_url, NULL, NULL);

	DefineCustomStringVariable("pg_walvault.s3_endpoint",
							   "URL of the S3 service, as https://host[:port].",
							   "Empty means AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL from the server's environment, else AWS's endpoint for pg_walvault.s3_region.",
							   &walvault_s3_endpoint,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_s3_endpoint, NULL, NULL);

	DefineCustomStringVariable("pg_walvault.s3_region",
							   "Region that S3 requests are signed for.",
							   "Empty means AWS_REGION or AWS_DEFAULT_REGION from the server's environment, else us-east-1.",
							   &walvault_s3_region,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_s3_region, NULL, NULL);

	DefineCustomEnumVariable("pg_walvault.s3_uri_style",
							 "How the bucket is named in S3 requests.",
							 "host (BUCKET.endpoint, as AWS wants) or path (endpoint/BUCKET, as most other servers want).",
							 &walvault_s3_uri_style,
							 WV_S3_URI_HOST,
							 guc_uri_styles,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("pg_walvault.s3_ca_file",
							   "File of CA certificates trusted for the S3 endpoint, besides the system's.",
							   "TLS certificates are always verified on https endpoints.",
							   &walvault_s3_ca_file,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_s3_ca_file, NULL, NULL);

	DefineCustomStringVariable("pg_walvault.s3_storage_class",
							   "Storage class of archived objects, as in STANDARD_IA.",
							   "Empty means the bucket's default.",
							   &walvault_s3_storage_class,
							   "",
							   PGC_SIGHUP,
							   0,
							   guc_check_s3_storage_class, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.s3_connect_timeout",
							"Time allowed to connect to the S3 endpoint.",
							NULL,
							&walvault_s3_connect_timeout,
							WV_S3_DEFAULT_CONNECT_TIMEOUT_MS, 100, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pg_walvault.s3_stall_timeout",
							"Time after which an S3 request that moves no data is abandoned.",
							"Rounded up to whole seconds.",
							&walvault_s3_stall_timeout,
							WV_S3_DEFAULT_STALL_TIMEOUT_MS, 1000, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("pg_walvault");
}

static bool
guc_check_archive_directory(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;

	if (!is_absolute_path(*newval))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("pg_walvault.archive_directory must be an absolute path");
		GUC_check_errdetail("\"%s\" is a relative path, which would be resolved against the data directory.",
							*newval);
		return false;
	}

	if (strlen(*newval) + GUC_PATH_RESERVE >= MAXPGPATH)
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("pg_walvault.archive_directory is too long");
		GUC_check_errdetail("The path is %zu bytes long; at most %d bytes are allowed.",
							strlen(*newval), MAXPGPATH - GUC_PATH_RESERVE - 1);
		return false;
	}

	return true;
}

/*
 * pg_walvault.compression takes the form pg_basebackup's --compress does,
 * METHOD[:DETAIL], parsed and validated by PostgreSQL's own code so that
 * levels mean what they mean there.  "off" and "none" store files as they
 * are.  The parsed setting travels to the assign hook as extra.
 */
static bool
guc_check_compression(char **newval, void **extra, GucSource source)
{
	char	   *value;
	char	   *detail;
	pg_compress_algorithm algorithm;
	pg_compress_specification spec;
	char	   *error;
	WalvaultCompression *result;

	value = pstrdup(*newval ? *newval : "");
	detail = strchr(value, ':');
	if (detail != NULL)
		*detail++ = '\0';

	if (pg_strcasecmp(value, "off") == 0 && detail == NULL)
		algorithm = PG_COMPRESSION_NONE;
	else if (!parse_compress_algorithm(value, &algorithm))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("unrecognized compression method \"%s\"", value);
		GUC_check_errhint("Valid methods are \"zstd\", \"lz4\" and \"gzip\", or \"off\".");
		return false;
	}

	parse_compress_specification(algorithm, detail, &spec);
	error = validate_compress_specification(&spec);
	if (error == NULL && (spec.options & PG_COMPRESSION_OPTION_WORKERS) != 0)
		error = _("compression option \"workers\" is not supported: each archive worker compresses one file at a time");
	if (error != NULL)
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid pg_walvault.compression \"%s\"", *newval);
		GUC_check_errdetail("%s", error);
		return false;
	}

	result = walvault_guc_malloc(sizeof(WalvaultCompression));
	if (result == NULL)
		return false;
	switch (spec.algorithm)
	{
		case PG_COMPRESSION_NONE:
			result->method = WALVAULT_CODEC_NONE;
			break;
		case PG_COMPRESSION_GZIP:
			result->method = WALVAULT_CODEC_GZIP;
			break;
		case PG_COMPRESSION_LZ4:
			result->method = WALVAULT_CODEC_LZ4;
			break;
		case PG_COMPRESSION_ZSTD:
			result->method = WALVAULT_CODEC_ZSTD;
			break;
	}
	result->level = spec.level;
	*extra = result;
	return true;
}

static void
guc_assign_compression(const char *newval, void *extra)
{
	walvault_compression = *(WalvaultCompression *) extra;
}

/*
 * pg_walvault.archive_url: "s3://BUCKET[/PREFIX]", checked by the S3
 * client's own parser (the restore program uses the same).
 */
static bool
guc_check_archive_url(char **newval, void **extra, GucSource source)
{
	char		bucket[WV_S3_BUCKET_MAX + 1];
	char		prefix[WV_S3_KEY_MAX + 1];
	char		err[256];

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!wv_s3_parse_url(*newval, bucket, sizeof(bucket), prefix,
						 sizeof(prefix), err, sizeof(err)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid pg_walvault.archive_url \"%s\"", *newval);
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("The form is s3://BUCKET or s3://BUCKET/PREFIX.");
		return false;
	}
	return true;
}

static bool
guc_check_s3_endpoint(char **newval, void **extra, GucSource source)
{
	char		err[256];

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!wv_s3_check_endpoint(*newval, err, sizeof(err)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid pg_walvault.s3_endpoint \"%s\"", *newval);
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("An example is \"https://s3.eu-west-1.amazonaws.com\".");
		return false;
	}
	return true;
}

static bool
guc_check_s3_region(char **newval, void **extra, GucSource source)
{
	char		err[256];

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!wv_s3_check_region(*newval, err, sizeof(err)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid pg_walvault.s3_region \"%s\"", *newval);
		GUC_check_errdetail("%s", err);
		return false;
	}
	return true;
}

static bool
guc_check_s3_ca_file(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!is_absolute_path(*newval))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("pg_walvault.s3_ca_file must be an absolute path");
		GUC_check_errdetail("\"%s\" is a relative path.", *newval);
		return false;
	}
	return true;
}

static bool
guc_check_s3_storage_class(char **newval, void **extra, GucSource source)
{
	char		err[256];

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!wv_s3_check_storage_class(*newval, err, sizeof(err)))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("invalid pg_walvault.s3_storage_class \"%s\"",
						 *newval);
		GUC_check_errdetail("%s", err);
		return false;
	}
	return true;
}

/*
 * Can we archive into dir right now?  Logs at elevel why not.  Used at start
 * and at every reload (elevel WARNING), never to refuse a setting.
 */
bool
walvault_directory_usable(const char *dir, int elevel)
{
	struct stat st;

	if (dir == NULL || dir[0] == '\0')
		return false;

	if (stat(dir, &st) == 0)
	{
		if (!S_ISDIR(st.st_mode))
		{
			ereport(elevel,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("pg_walvault.archive_directory \"%s\" is not usable: not a directory",
							dir),
					 errhint("WAL files stay in pg_wal until the directory can be written; archiving resumes by itself.")));
			return false;
		}
		if (access(dir, W_OK | X_OK) == 0)
			return true;
	}
	/* errno is from stat() or access() */
	ereport(elevel,
			(errcode_for_file_access(),
			 errmsg("pg_walvault.archive_directory \"%s\" is not usable: %m",
					dir),
			 errhint("WAL files stay in pg_wal until the directory can be written; archiving resumes by itself.")));
	return false;
}

/*
 * The pool can never exceed the worker slots of the DSM segment, and
 * min_workers never exceeds max_workers.
 */
int
walvault_effective_max_workers(int nworker_slots)
{
	return Min(walvault_max_workers, nworker_slots);
}

int
walvault_effective_min_workers(int nworker_slots)
{
	return Min(walvault_min_workers, walvault_effective_max_workers(nworker_slots));
}

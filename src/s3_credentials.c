/*-------------------------------------------------------------------------
 *
 * s3_credentials.c
 *	  Where the S3 client's credentials come from: the AWS conventions, in
 *	  their order.
 *
 * Credentials are never a setting of ours (a GUC is visible to every
 * superuser and lands in logs): they are found where AWS's own tools look,
 * in the same order, so that a server set up for the AWS CLI needs nothing
 * more.
 *
 *	1. The environment of the process: AWS_ACCESS_KEY_ID and
 *	   AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN if set.  For the server,
 *	   that is the postmaster's environment (on Debian,
 *	   /etc/postgresql/N/main/environment).
 *	2. The shared credentials file: AWS_SHARED_CREDENTIALS_FILE, or
 *	   ~/.aws/credentials of the OS user, section AWS_PROFILE or "default".
 *	   It is read again whenever it changes, so keys rotated in the file
 *	   are used without a restart.  A profile named by AWS_PROFILE that the
 *	   file does not have is an error, as for the AWS CLI.
 *	3. EC2 instance metadata, IMDSv2: a session token from a PUT, then the
 *	   role's temporary credentials, at AWS_EC2_METADATA_SERVICE_ENDPOINT
 *	   (default http://169.254.169.254), unless AWS_EC2_METADATA_DISABLED is
 *	   "true".  They are fetched again when less than
 *	   S3_CREDS_REFRESH_MARGIN seconds are left, so a request is never
 *	   signed with keys about to expire.
 *
 * The secret never leaves this struct and the signing library: no message
 * here names a key.
 *
 * src/s3_credentials.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "s3_client.h"

/* Refresh temporary credentials this long before they expire */
#define S3_CREDS_REFRESH_MARGIN		300
#define S3_IMDS_DEFAULT_ENDPOINT	"http://169.254.169.254"
#define S3_IMDS_TOKEN_TTL			"21600"
#define S3_IMDS_TIMEOUT_MS			2000
#define S3_IMDS_BODY_MAX			8192

/* WvS3Credentials.source */
enum
{
	S3_CREDS_NONE = 0,
	S3_CREDS_ENV,
	S3_CREDS_FILE,
	S3_CREDS_IMDS
};

typedef struct S3ImdsBody
{
	char		data[S3_IMDS_BODY_MAX];
	size_t		len;
} S3ImdsBody;

static bool s3c_from_env(WvS3Credentials *creds);
static int	s3c_from_file(WvS3Credentials *creds, char *err, size_t err_size);
static bool s3c_from_imds(WvS3Credentials *creds, char *err, size_t err_size);
static void s3c_trim(char *s);
static bool s3c_json_string(const char *json, const char *field, char *out,
							size_t out_size);
static int64_t s3c_parse_time(const char *iso);

bool
wv_s3_credentials_get(WvS3Credentials *creds, const WvS3Hooks *hooks,
					  char *err, size_t err_size)
{
	const char *disabled;
	char		file_err[2048] = "";
	int			rc;

	(void) hooks;

	/* 1. the environment: always first, and cheap to look at again */
	if (s3c_from_env(creds))
		return true;

	/* 2. the shared credentials file (re-read when it changed) */
	rc = s3c_from_file(creds, file_err, sizeof(file_err));
	if (rc > 0)
		return true;
	if (rc < 0)
	{
		snprintf(err, err_size, "%s", file_err);
		return false;
	}

	/* 3. instance metadata, kept until it is about to expire */
	disabled = getenv("AWS_EC2_METADATA_DISABLED");
	if (disabled != NULL && strcasecmp(disabled, "true") == 0)
	{
		snprintf(err, err_size,
				 "no AWS credentials found: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, %s, and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)",
				 file_err);
		return false;
	}
	if (creds->source == S3_CREDS_IMDS &&
		creds->expiration - S3_CREDS_REFRESH_MARGIN > (int64_t) time(NULL))
		return true;
	if (s3c_from_imds(creds, err, err_size))
		return true;

	/* keys still valid for a while are better than none */
	if (creds->source == S3_CREDS_IMDS &&
		creds->expiration > (int64_t) time(NULL))
		return true;
	memset(creds, 0, sizeof(*creds));
	{
		char		imds_err[512];

		snprintf(imds_err, sizeof(imds_err), "%s", err);
		snprintf(err, err_size,
				 "no AWS credentials found: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, %s, and %s",
				 file_err, imds_err);
	}
	return false;
}

static bool
s3c_from_env(WvS3Credentials *creds)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (id == NULL || id[0] == '\0' || secret == NULL || secret[0] == '\0')
		return false;
	if (creds->source == S3_CREDS_ENV)
		return true;
	memset(creds, 0, sizeof(*creds));
	snprintf(creds->access_key, sizeof(creds->access_key), "%s", id);
	snprintf(creds->secret_key, sizeof(creds->secret_key), "%s", secret);
	if (token != NULL)
		snprintf(creds->token, sizeof(creds->token), "%s", token);
	creds->source = S3_CREDS_ENV;
	snprintf(creds->source_desc, sizeof(creds->source_desc),
			 "the environment");
	return true;
}

static void
s3c_trim(char *s)
{
	char	   *start = s;
	size_t		len;

	while (isspace((unsigned char) *start))
		start++;
	len = strlen(start);
	while (len > 0 && isspace((unsigned char) start[len - 1]))
		len--;
	memmove(s, start, len);
	s[len] = '\0';
}

/*
 * The shared credentials file: 1 = found, 0 = not there (err says so, for
 * the message when nothing is found), -1 = an error.
 */
static int
s3c_from_file(WvS3Credentials *creds, char *err, size_t err_size)
{
	const char *path_env = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *profile_env = getenv("AWS_PROFILE");
	const char *profile = (profile_env && profile_env[0]) ? profile_env : "default";
	char		path[1024];
	struct stat st;
	FILE	   *f;
	char		line[WV_S3_TOKEN_MAX + 64];
	bool		in_profile = false;
	bool		found_profile = false;
	WvS3Credentials found;

	if (path_env != NULL && path_env[0] != '\0')
		snprintf(path, sizeof(path), "%s", path_env);
	else
	{
		const char *home = getenv("HOME");

		if (home == NULL || home[0] == '\0')
		{
			struct passwd *pw = getpwuid(geteuid());

			home = pw ? pw->pw_dir : NULL;
		}
		if (home == NULL)
		{
			snprintf(err, err_size, "there is no home directory for ~/.aws/credentials");
			return 0;
		}
		snprintf(path, sizeof(path), "%s/.aws/credentials", home);
	}

	if (stat(path, &st) != 0)
	{
		if (errno == ENOENT && !(profile_env && profile_env[0]))
		{
			snprintf(err, err_size, "there is no shared credentials file \"%s\"",
					 path);
			return 0;
		}
		snprintf(err, err_size, "could not read the shared credentials file \"%s\": %s",
				 path, strerror(errno));
		return -1;
	}
	if (creds->source == S3_CREDS_FILE &&
		creds->file_mtime_ns == (int64_t) st.st_mtim.tv_sec * 1000000000 +
		st.st_mtim.tv_nsec)
		return 1;

	f = fopen(path, "r");
	if (f == NULL)
	{
		snprintf(err, err_size, "could not open the shared credentials file \"%s\": %s",
				 path, strerror(errno));
		return -1;
	}
	memset(&found, 0, sizeof(found));
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char	   *eq;

		s3c_trim(line);
		if (line[0] == '#' || line[0] == ';' || line[0] == '\0')
			continue;
		if (line[0] == '[')
		{
			char	   *end = strchr(line, ']');

			if (end)
				*end = '\0';
			s3c_trim(line + 1);
			in_profile = (strcmp(line + 1, profile) == 0);
			found_profile |= in_profile;
			continue;
		}
		if (!in_profile || (eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		s3c_trim(line);
		s3c_trim(eq + 1);
		if (strcmp(line, "aws_access_key_id") == 0)
			snprintf(found.access_key, sizeof(found.access_key), "%s", eq + 1);
		else if (strcmp(line, "aws_secret_access_key") == 0)
			snprintf(found.secret_key, sizeof(found.secret_key), "%s", eq + 1);
		else if (strcmp(line, "aws_session_token") == 0)
			snprintf(found.token, sizeof(found.token), "%s", eq + 1);
	}
	fclose(f);
	memset(line, 0, sizeof(line));

	if (!found_profile)
	{
		snprintf(err, err_size,
				 "the shared credentials file \"%s\" has no profile \"%s\"",
				 path, profile);
		/* a profile asked for by name must exist, as for the AWS CLI */
		return (profile_env && profile_env[0]) ? -1 : 0;
	}
	if (found.access_key[0] == '\0' || found.secret_key[0] == '\0')
	{
		snprintf(err, err_size,
				 "profile \"%s\" of the shared credentials file \"%s\" lacks aws_access_key_id or aws_secret_access_key",
				 profile, path);
		return -1;
	}
	found.source = S3_CREDS_FILE;
	found.file_mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 +
		st.st_mtim.tv_nsec;
	snprintf(found.source_desc, sizeof(found.source_desc),
			 "profile \"%s\" of \"%s\"", profile, path);
	*creds = found;
	memset(&found, 0, sizeof(found));
	return 1;
}

static size_t
s3c_imds_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	S3ImdsBody *body = (S3ImdsBody *) arg;
	size_t		len = size * nmemb;

	if (body->len + len >= sizeof(body->data))
		return 0;
	memcpy(body->data + body->len, ptr, len);
	body->len += len;
	body->data[body->len] = '\0';
	return len;
}

/*
 * One request to the metadata service: method PUT (the token) or GET;
 * header may be NULL.  Returns the HTTP status, 0 if none, with the body.
 */
static long
s3c_imds_request(CURL *curl, const char *method, const char *url,
				 const char *header, S3ImdsBody *body, char *err,
				 size_t err_size)
{
	struct curl_slist *headers = NULL;
	char		errbuf[CURL_ERROR_SIZE] = "";
	CURLcode	rc;
	long		status = 0;

	body->len = 0;
	body->data[0] = '\0';
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) S3_IMDS_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) S3_IMDS_TIMEOUT_MS * 2);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s3c_imds_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	if (strcmp(method, "PUT") == 0)
	{
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
		headers = curl_slist_append(headers,
									"X-aws-ec2-metadata-token-ttl-seconds: " S3_IMDS_TOKEN_TTL);
	}
	if (header)
		headers = curl_slist_append(headers, header);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	rc = curl_easy_perform(curl);
	curl_slist_free_all(headers);
	if (rc != CURLE_OK)
	{
		snprintf(err, err_size, "instance metadata at \"%s\" could not be read: %s",
				 url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return 0;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		snprintf(err, err_size, "instance metadata at \"%s\" answered HTTP %ld",
				 url, status);
	return status;
}

static bool
s3c_from_imds(WvS3Credentials *creds, char *err, size_t err_size)
{
	const char *endpoint = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	char		base[512];
	char		url[1024];
	char		token_header[256];
	char		role[256];
	char		code[64] = "";
	S3ImdsBody *body;
	WvS3Credentials found;
	CURL	   *curl;
	bool		ok = false;
	size_t		len;

	if (endpoint == NULL || endpoint[0] == '\0')
		endpoint = S3_IMDS_DEFAULT_ENDPOINT;
	snprintf(base, sizeof(base), "%s", endpoint);
	len = strlen(base);
	while (len > 0 && base[len - 1] == '/')
		base[--len] = '\0';

	curl = curl_easy_init();
	body = malloc(sizeof(S3ImdsBody));
	if (curl == NULL || body == NULL)
	{
		snprintf(err, err_size, "out of memory");
		goto done;
	}

	/* IMDSv2: a session token first */
	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	if (s3c_imds_request(curl, "PUT", url, NULL, body, err, err_size) != 200)
		goto done;
	s3c_trim(body->data);
	if (body->data[0] == '\0' || strlen(body->data) > 200)
	{
		snprintf(err, err_size, "instance metadata at \"%s\" gave no session token",
				 base);
		goto done;
	}
	snprintf(token_header, sizeof(token_header), "X-aws-ec2-metadata-token: %s",
			 body->data);

	/* the role the instance has */
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/",
			 base);
	if (s3c_imds_request(curl, "GET", url, token_header, body, err,
						 err_size) != 200)
		goto done;
	body->data[strcspn(body->data, "\r\n")] = '\0';
	s3c_trim(body->data);
	if (body->data[0] == '\0' || strlen(body->data) >= sizeof(role) ||
		strchr(body->data, '/') != NULL)
	{
		snprintf(err, err_size, "instance metadata at \"%s\" names no IAM role",
				 base);
		goto done;
	}
	snprintf(role, sizeof(role), "%s", body->data);

	/* and its credentials */
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s",
			 base, role);
	if (s3c_imds_request(curl, "GET", url, token_header, body, err,
						 err_size) != 200)
		goto done;
	memset(&found, 0, sizeof(found));
	if (s3c_json_string(body->data, "Code", code, sizeof(code)) &&
		strcmp(code, "Success") != 0)
	{
		snprintf(err, err_size, "instance metadata at \"%s\" answered \"%s\" for role \"%s\"",
				 base, code, role);
		goto done;
	}
	if (!s3c_json_string(body->data, "AccessKeyId", found.access_key,
						 sizeof(found.access_key)) ||
		!s3c_json_string(body->data, "SecretAccessKey", found.secret_key,
						 sizeof(found.secret_key)))
	{
		snprintf(err, err_size, "instance metadata at \"%s\" gave no credentials for role \"%s\"",
				 base, role);
		goto done;
	}
	s3c_json_string(body->data, "Token", found.token, sizeof(found.token));
	{
		char		expiration[64] = "";

		if (s3c_json_string(body->data, "Expiration", expiration,
							sizeof(expiration)))
			found.expiration = s3c_parse_time(expiration);
	}
	if (found.expiration <= 0)
	{
		/* unknown: look again in an hour at the latest */
		found.expiration = (int64_t) time(NULL) + 3600;
	}
	found.source = S3_CREDS_IMDS;
	snprintf(found.source_desc, sizeof(found.source_desc),
			 "instance metadata role \"%s\"", role);
	*creds = found;
	memset(&found, 0, sizeof(found));
	ok = true;

done:
	if (body)
	{
		memset(body, 0, sizeof(S3ImdsBody));
		free(body);
	}
	if (curl)
		curl_easy_cleanup(curl);
	return ok;
}

/*
 * The string value of "field" in a flat JSON object (what the metadata
 * service answers), with the escapes JSON strings may have there.
 */
static bool
s3c_json_string(const char *json, const char *field, char *out,
				size_t out_size)
{
	char		key[64];
	const char *p;
	size_t		o = 0;

	snprintf(key, sizeof(key), "\"%s\"", field);
	p = strstr(json, key);
	if (p == NULL)
		return false;
	p += strlen(key);
	while (isspace((unsigned char) *p))
		p++;
	if (*p++ != ':')
		return false;
	while (isspace((unsigned char) *p))
		p++;
	if (*p++ != '"')
		return false;
	while (*p && *p != '"')
	{
		if (o + 1 >= out_size)
			return false;
		if (*p == '\\' && p[1] != '\0')
		{
			p++;
			if (*p == 'n')
				out[o++] = '\n';
			else if (*p == 't')
				out[o++] = '\t';
			else
				out[o++] = *p;
			p++;
			continue;
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
	return *p == '"';
}

/* "2026-11-30T12:00:00Z" as Unix time; 0 if it is not that. */
static int64_t
s3c_parse_time(const char *iso)
{
	struct tm	tm;
	int			y,
				mo,
				d,
				h,
				mi,
				s;

	if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t) timegm(&tm);
}

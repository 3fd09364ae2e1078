/*-------------------------------------------------------------------------
 *
 * wal_names.c
 *	  Classify the name of a file to archive or restore (see wal_names.h).
 *
 * The server's own tests (IsXLogFileName() and friends) check the prefix
 * and the suffix of some shapes only: "000000010000000000000001;id;.backup"
 * passes IsBackupHistoryFileName().  The server never hands such a name to
 * an archive module, but we also read names from pg_wal/archive_status
 * ourselves, and run commands with them; here every character is checked.
 *
 * src/wal_names.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal_names.h"

/*
 * Are the first len characters of s upper-case hexadecimal digits?  The
 * server writes WAL file names in upper case only, so lower case would name
 * a file it never made.
 */
static bool
wnames_is_upper_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	}
	return true;
}

WalvaultFileKind
walvault_classify_name(const char *name)
{
	size_t		len = strnlen(name, WALVAULT_MAX_NAME_LEN + 1);

	if (len == 24 && wnames_is_upper_hex(name, 24))
		return WALVAULT_FILE_SEGMENT;

	if (len == 24 + 8 && wnames_is_upper_hex(name, 24) &&
		strcmp(name + 24, ".partial") == 0)
		return WALVAULT_FILE_PARTIAL;

	if (len == 8 + 8 && wnames_is_upper_hex(name, 8) &&
		strcmp(name + 8, ".history") == 0)
		return WALVAULT_FILE_TL_HISTORY;

	if (len == 24 + 1 + 8 + 7 && wnames_is_upper_hex(name, 24) &&
		name[24] == '.' && wnames_is_upper_hex(name + 25, 8) &&
		strcmp(name + 33, ".backup") == 0)
		return WALVAULT_FILE_BACKUP_HISTORY;

	return WALVAULT_FILE_INVALID;
}

/*
 * The marker's content for system sysid; created says when, for people.
 * Returns what snprintf returns.
 */
int
walvault_marker_format(char *buf, size_t size, uint64_t sysid,
					   const char *created)
{
	return snprintf(buf, size,
					"# A pg_walvault WAL archive: pg_walvault_restore needs this file\n"
					"# to tell \"not archived\" from \"archive not there\".  Keep it.\n"
					"system_identifier = %llu\n"
					"created = %s\n",
					(unsigned long long) sysid, created);
}

/*
 * Read the system identifier from a marker's content (len bytes, not
 * necessarily terminated).  false if there is no valid one: the
 * "system_identifier = DIGITS" line is missing, malformed or repeated.
 */
bool
walvault_marker_parse(const char *content, size_t len, uint64_t *sysid)
{
	static const char key[] = "system_identifier";
	char		text[WALVAULT_MARKER_MAX + 1];
	char	   *line;
	char	   *next;
	bool		found = false;

	if (len > WALVAULT_MARKER_MAX || memchr(content, '\0', len) != NULL)
		return false;
	memcpy(text, content, len);
	text[len] = '\0';

	for (line = text; line != NULL && *line != '\0'; line = next)
	{
		char	   *p = line;
		char	   *end;
		unsigned long long value;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(p, key, sizeof(key) - 1) != 0)
			continue;
		p += sizeof(key) - 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p++ != '=')
			return false;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9' || found)
			return false;
		errno = 0;
		value = strtoull(p, &end, 10);
		if (errno != 0)
			return false;
		while (*end == ' ' || *end == '\t' || *end == '\r')
			end++;
		if (*end != '\0' || value == 0)
			return false;
		*sysid = (uint64_t) value;
		found = true;
	}
	return found;
}

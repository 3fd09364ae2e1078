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

/*-------------------------------------------------------------------------
 *
 * wal_names.h
 *	  The names of the files pg_walvault archives and restores.
 *
 * One classifier for the module and the restore program, so that both
 * accept exactly the same names: the shapes the server gives WAL files, with
 * exact lengths and upper-case hexadecimal digits only.  Every path either
 * of them builds from a name the server (or a directory listing) gave goes
 * through it, and a name it accepts is safe in a path and in a shell
 * command.  No PostgreSQL header is used (see codec.h).
 *
 * src/wal_names.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef WALVAULT_WAL_NAMES_H
#define WALVAULT_WAL_NAMES_H

#include <stdbool.h>

typedef enum WalvaultFileKind
{
	WALVAULT_FILE_INVALID,
	WALVAULT_FILE_SEGMENT,		/* 000000010000000000000001 */
	WALVAULT_FILE_PARTIAL,		/* 000000010000000000000001.partial */
	WALVAULT_FILE_TL_HISTORY,	/* 00000002.history */
	WALVAULT_FILE_BACKUP_HISTORY	/* 000000010000000000000001.00000028.backup */
} WalvaultFileKind;

/* The longest such name, without its terminating NUL. */
#define WALVAULT_MAX_NAME_LEN	40

extern WalvaultFileKind walvault_classify_name(const char *name);

#endif							/* WALVAULT_WAL_NAMES_H */

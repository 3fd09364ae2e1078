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
#include <stddef.h>
#include <stdint.h>

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

/*
 * The archive's marker: a small text file (an object in a store) beside the
 * archived files, written by the module the first time it archives there
 * (archive_marker.c) and required by the restore program before it may say
 * that a file is not in the archive (restore/marker.c).  It names the
 * database system whose WAL the archive holds, one "key = value" per line.
 * Its name is not one walvault_classify_name() accepts: it never collides
 * with an archived file.
 */
#define WALVAULT_MARKER_NAME	"pg_walvault.archive"
#define WALVAULT_MARKER_MAX		1024	/* larger is not a marker */

extern int	walvault_marker_format(char *buf, size_t size, uint64_t sysid,
								   const char *created);
extern bool walvault_marker_parse(const char *content, size_t len,
								  uint64_t *sysid);

#endif							/* WALVAULT_WAL_NAMES_H */

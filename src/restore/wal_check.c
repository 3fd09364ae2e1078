/*-------------------------------------------------------------------------
 *
 * wal_check.c
 *	  Who asks for a file, and what a restored file may contain.
 *
 * The server checks a restored segment only as it replays it, and in
 * archive recovery it takes the first page it cannot read for the end of
 * the WAL: it finishes recovery there and promotes.  A segment that is
 * corrupt, truncated, of another cluster or stored under another segment's
 * name must therefore be refused here, with an exit status that stops
 * recovery (report.c), before the server sees it.
 *
 * The checks run on the content as it is written, piece by piece, so that
 * they also bound it: nothing is written beyond what the file may hold.
 *
 *	A WAL segment (also .partial) starts with a long page header, which
 *	must carry the WAL page magic of the server asking (PG_VERSION of the
 *	data directory, which is the working directory of a restore_command),
 *	its system identifier (global/pg_control), a valid segment size and
 *	page size, and the WAL location and timeline the file's name gives.
 *	The segment size it states is the most the content may hold: a
 *	decompression bomb stops there.  At the end the content must be exactly
 *	that size.
 *
 *	Every further page of a full segment starts with a short header with
 *	the same magic and its own WAL location, or is zeroed: the server zeroes
 *	the pages it skips after a WAL switch, and only those, so once a zeroed
 *	page is seen every later one must be zeroed too.  The records of a
 *	full segment are walked as well, and their CRCs checked
 *	(wal_records.c): only that sees a byte changed inside a record, and
 *	only a switch record lets zeroes follow.  A .partial segment is checked
 *	on its first page only, since the rest of such a file may be whatever a
 *	recycled segment held.
 *
 *	Timeline and backup history files are text of a few kB; more than
 *	WV_HISTORY_MAX_SIZE is refused.
 *
 * The header layouts mirror access/xlog_internal.h; they have not changed
 * since long before 15.  The structs use the same member types in the same
 * nesting, so the compiler lays them out as the server does on this
 * platform.  What changes with every major version is the page magic.
 *
 * src/restore/wal_check.c
 *
 *-------------------------------------------------------------------------
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "restore.h"

#define WV_XLP_LONG_HEADER	0x0002
#define WV_XLP_ALL_FLAGS	0x000F
#define WV_XLOG_BLCKSZ_MIN	1024
#define WV_XLOG_BLCKSZ_MAX	(64 * 1024)

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

#define WV_SHORT_PHD	sizeof(WvXLogPageHeaderData)
#define WV_LONG_PHD		sizeof(WvXLogLongPageHeaderData)

/*
 * XLOG_PAGE_MAGIC of every major version pg_walvault supports: a segment is
 * restored only if it carries the magic of the server that asks for it.
 */
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

static const WalVersion *walcheck_version_by_major(int major);
static const WalVersion *walcheck_version_by_magic(uint16_t magic);
static uint32_t walcheck_hex8(const char *s);
static void walcheck_first_page(WalCheck *check);
static void walcheck_next_page(WalCheck *check);
static void walcheck_pages(WalCheck *check, const unsigned char *data,
						   size_t len);

/*
 * The server only supports power of two segment sizes from 1 MB to 1 GB.
 */
bool
wv_is_valid_segment_size(uint64_t size)
{
	return size >= WV_WAL_SEG_MIN_SIZE && size <= WV_WAL_SEG_MAX_SIZE &&
		(size & (size - 1)) == 0;
}

static const WalVersion *
walcheck_version_by_major(int major)
{
	for (size_t i = 0; i < NUM_WAL_VERSIONS; i++)
		if (wal_versions[i].major == major)
			return &wal_versions[i];
	return NULL;
}

static const WalVersion *
walcheck_version_by_magic(uint16_t magic)
{
	for (size_t i = 0; i < NUM_WAL_VERSIONS; i++)
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
void
wv_identify_server(ServerIdentity *server)
{
	FILE	   *f;
	int			fd;
	int			major;
	uint64_t	sysid;

	memset(server, 0, sizeof(*server));
	server->version = walcheck_version_by_major(WV_SERVER_MAJOR);
	server->version_source = "the server this program was built for";

	f = fopen("PG_VERSION", "r");
	if (f != NULL)
	{
		if (fscanf(f, "%d", &major) == 1)
		{
			const WalVersion *v = walcheck_version_by_major(major);

			if (v == NULL)
				wv_error(WV_ERROR_USAGE,
						 "the data directory is of PostgreSQL %d, which pg_walvault does not support",
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

/* Value of 8 hexadecimal digits; the name was checked by the classifier. */
static uint32_t
walcheck_hex8(const char *s)
{
	char		buf[9];

	memcpy(buf, s, 8);
	buf[8] = '\0';
	return (uint32_t) strtoul(buf, NULL, 16);
}

/*
 * Start checking the content of file_name, to be restored from src_path.
 * extra_limit, when not 0, is a further bound on its size (the room the
 * prefetch spool has for it).
 */
void
walcheck_init(WalCheck *check, const char *file_name, WalvaultFileKind kind,
			  const char *src_path, uint64_t extra_limit)
{
	memset(check, 0, sizeof(*check));
	check->kind = kind;
	check->src_path = src_path;
	check->extra_limit = extra_limit;

	if (kind == WALVAULT_FILE_SEGMENT || kind == WALVAULT_FILE_PARTIAL)
	{
		wv_identify_server(&check->server);
		check->name_tli = walcheck_hex8(file_name);
		check->name_log = walcheck_hex8(file_name + 8);
		check->name_seg = walcheck_hex8(file_name + 16);
		/* until the first page tells the segment size */
		check->limit = WV_WAL_SEG_MAX_SIZE;
	}
	else
		check->limit = WV_HISTORY_MAX_SIZE;
	if (extra_limit != 0 && extra_limit < check->limit)
		check->limit = extra_limit;
}

/*
 * The size of an uncompressed archive file is known before it is copied:
 * refuse at once what cannot be right.
 */
void
walcheck_plain_size(const WalCheck *check, uint64_t size)
{
	if (check->kind == WALVAULT_FILE_SEGMENT ||
		check->kind == WALVAULT_FILE_PARTIAL)
	{
		if (!wv_is_valid_segment_size(size))
			wv_error(WV_ERROR_CONTENT,
					 "archive file \"%s\" has invalid size %llu bytes: a WAL segment must be a power of two between 1 MB and 1 GB",
					 check->src_path, (unsigned long long) size);
	}
	else if (size > WV_HISTORY_MAX_SIZE)
		wv_error(WV_ERROR_CONTENT,
				 "archive file \"%s\" has %llu bytes, more than the %llu a history file may have",
				 check->src_path, (unsigned long long) size,
				 (unsigned long long) WV_HISTORY_MAX_SIZE);
}

/* The long header of the first page is complete in check->hdr. */
static void
walcheck_first_page(WalCheck *check)
{
	WvXLogLongPageHeaderData hdr;
	const ServerIdentity *server = &check->server;
	const WalVersion *written_by;
	uint64_t	segs_per_id;
	uint64_t	expected;

	/* copy out, since hdr has no particular alignment */
	memcpy(&hdr, check->hdr, sizeof(hdr));

	if (hdr.std.xlp_magic != server->version->page_magic)
	{
		written_by = walcheck_version_by_magic(hdr.std.xlp_magic);
		if (written_by != NULL)
			wv_error(WV_ERROR_CONTENT,
					 "restored content of \"%s\" is WAL of PostgreSQL %d, but the server is PostgreSQL %d (from %s)",
					 check->src_path, written_by->major,
					 server->version->major, server->version_source);
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid WAL page magic 0x%04X, expected 0x%04X for PostgreSQL %d",
				 check->src_path, (unsigned int) hdr.std.xlp_magic,
				 (unsigned int) server->version->page_magic,
				 server->version->major);
	}

	if ((hdr.std.xlp_info & WV_XLP_LONG_HEADER) == 0)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" does not start with a long WAL page header",
				 check->src_path);
	if ((hdr.std.xlp_info & ~WV_XLP_ALL_FLAGS) != 0)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid info bits 0x%04X in its first page header",
				 check->src_path, (unsigned int) hdr.std.xlp_info);

	if (server->have_sysid && hdr.xlp_sysid != server->sysid)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" is WAL of database system %llu, but the server is database system %llu",
				 check->src_path, (unsigned long long) hdr.xlp_sysid,
				 (unsigned long long) server->sysid);

	if (!wv_is_valid_segment_size(hdr.xlp_seg_size))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid WAL segment size %u in its page header: a WAL segment must be a power of two between 1 MB and 1 GB",
				 check->src_path, (unsigned int) hdr.xlp_seg_size);
	if (hdr.xlp_xlog_blcksz < WV_XLOG_BLCKSZ_MIN ||
		hdr.xlp_xlog_blcksz > WV_XLOG_BLCKSZ_MAX ||
		(hdr.xlp_xlog_blcksz & (hdr.xlp_xlog_blcksz - 1)) != 0)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid WAL page size %u in its page header",
				 check->src_path, (unsigned int) hdr.xlp_xlog_blcksz);

	/* the name says where in the WAL the segment starts, and its timeline */
	segs_per_id = UINT64_C(0x100000000) / hdr.xlp_seg_size;
	if (check->name_seg >= segs_per_id)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has WAL segment size %u, which no segment of its name can have",
				 check->src_path, (unsigned int) hdr.xlp_seg_size);
	check->segno = (uint64_t) check->name_log * segs_per_id + check->name_seg;
	expected = check->segno * hdr.xlp_seg_size;
	if (hdr.std.xlp_pageaddr != expected)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" starts at WAL location %X/%08X, but its name says %X/%08X",
				 check->src_path,
				 (unsigned int) (hdr.std.xlp_pageaddr >> 32),
				 (unsigned int) hdr.std.xlp_pageaddr,
				 (unsigned int) (expected >> 32), (unsigned int) expected);
	if (hdr.std.xlp_tli == 0 || hdr.std.xlp_tli > check->name_tli)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" is WAL of timeline %u, but its name says timeline %u",
				 check->src_path, (unsigned int) hdr.std.xlp_tli,
				 (unsigned int) check->name_tli);

	check->have_long_header = true;
	check->seg_size = hdr.xlp_seg_size;
	check->blcksz = hdr.xlp_xlog_blcksz;
	check->last_tli = hdr.std.xlp_tli;
	if (check->limit > check->seg_size)
		check->limit = check->seg_size;

	/* a full segment's records are walked too, from its first byte */
	if (check->kind == WALVAULT_FILE_SEGMENT)
	{
		check->walk_records = true;
		walrec_begin_segment(&check->records, check->src_path,
							 check->blcksz, check->seg_size, check->segno);
		walrec_data(&check->records, check->hdr, WV_LONG_PHD);
	}
}

/* The short header of page check->page_no is complete in check->hdr. */
static void
walcheck_next_page(WalCheck *check)
{
	WvXLogPageHeaderData hdr;
	uint64_t	offset = check->page_no * check->blcksz;
	uint64_t	expected = check->segno * check->seg_size + offset;
	bool		zero = true;

	for (size_t i = 0; i < WV_SHORT_PHD; i++)
		if (check->hdr[i] != 0)
			zero = false;
	if (zero)
	{
		/* the server zeroes the pages after a WAL switch, to the end */
		check->zero_pages = true;
		return;
	}

	memcpy(&hdr, check->hdr, sizeof(hdr));
	if (check->zero_pages)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has a page header at offset %llu after zeroed pages",
				 check->src_path, (unsigned long long) offset);
	if (hdr.xlp_magic != check->server.version->page_magic)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid WAL page magic 0x%04X at offset %llu",
				 check->src_path, (unsigned int) hdr.xlp_magic,
				 (unsigned long long) offset);
	if ((hdr.xlp_info & ~WV_XLP_ALL_FLAGS) != 0)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid info bits 0x%04X in the page header at offset %llu",
				 check->src_path, (unsigned int) hdr.xlp_info,
				 (unsigned long long) offset);
	if (hdr.xlp_pageaddr != expected)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has WAL location %X/%08X in the page header at offset %llu, expected %X/%08X",
				 check->src_path,
				 (unsigned int) (hdr.xlp_pageaddr >> 32),
				 (unsigned int) hdr.xlp_pageaddr,
				 (unsigned long long) offset,
				 (unsigned int) (expected >> 32), (unsigned int) expected);
	if (hdr.xlp_tli < check->last_tli || hdr.xlp_tli > check->name_tli)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has timeline %u in the page header at offset %llu (previous page: %u, file name: %u)",
				 check->src_path, (unsigned int) hdr.xlp_tli,
				 (unsigned long long) offset,
				 (unsigned int) check->last_tli,
				 (unsigned int) check->name_tli);
	check->last_tli = hdr.xlp_tli;
}

/*
 * Gather the first want bytes of a page header into check->hdr from data,
 * which may hold only part of it; advance data, len and off past what was
 * taken.  Returns true once the header is complete.
 */
static bool
walcheck_gather(WalCheck *check, size_t want, const unsigned char **data,
				size_t *len, uint64_t *off)
{
	size_t		n = want - check->hdr_len;

	if (n > *len)
		n = *len;
	memcpy(check->hdr + check->hdr_len, *data, n);
	check->hdr_len += n;
	*data += n;
	*len -= n;
	*off += n;
	return check->hdr_len == want;
}

/*
 * Walk the page headers in data, which starts at offset check->nbytes of
 * the file.  Headers may straddle pieces: they are gathered in check->hdr.
 */
static void
walcheck_pages(WalCheck *check, const unsigned char *data, size_t len)
{
	uint64_t	off = check->nbytes;

	while (len > 0)
	{
		if (!check->have_long_header)
		{
			if (walcheck_gather(check, WV_LONG_PHD, &data, &len, &off))
			{
				walcheck_first_page(check);
				check->hdr_len = 0;
				check->page_no = 1;
			}
			continue;
		}

		/* the rest of a .partial is not WAL; past the end, the limit says */
		if (check->kind == WALVAULT_FILE_PARTIAL ||
			check->page_no * check->blcksz >= check->seg_size)
			return;

		if (off < check->page_no * check->blcksz)
		{
			uint64_t	skip = check->page_no * check->blcksz - off;
			size_t		n = skip < len ? (size_t) skip : len;

			data += n;
			len -= n;
			off += n;
			continue;
		}

		if (walcheck_gather(check, WV_SHORT_PHD, &data, &len, &off))
		{
			walcheck_next_page(check);
			check->hdr_len = 0;
			check->page_no++;
		}
	}
}

/*
 * Check the next len bytes of content, before they are written: dies on
 * anything wrong, and on content beyond what the file may hold.
 */
void
walcheck_data(WalCheck *check, const unsigned char *data, size_t len)
{
	uint64_t	walked_from = check->nbytes;

	if (check->kind == WALVAULT_FILE_SEGMENT ||
		check->kind == WALVAULT_FILE_PARTIAL)
		walcheck_pages(check, data, len);

	if (check->nbytes + len > check->limit)
	{
		if (check->extra_limit != 0 && check->limit == check->extra_limit)
			wv_error(WV_ERROR_IO,
					 "restored content of \"%s\" exceeds the room left in the prefetch spool (%llu bytes)",
					 check->src_path, (unsigned long long) check->limit);
		if (check->have_long_header)
			wv_error(WV_ERROR_CONTENT,
					 "restored content of \"%s\" exceeds the WAL segment size its page header gives (%u bytes)",
					 check->src_path, (unsigned int) check->seg_size);
		if (check->kind == WALVAULT_FILE_SEGMENT ||
			check->kind == WALVAULT_FILE_PARTIAL)
			wv_error(WV_ERROR_CONTENT,
					 "restored content of \"%s\" exceeds the maximum WAL segment size of %llu bytes",
					 check->src_path, (unsigned long long) check->limit);
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" exceeds %llu bytes, the most a history file may have",
				 check->src_path, (unsigned long long) check->limit);
	}

	/* the long header went to the walk when it was complete */
	if (check->walk_records)
	{
		if (walked_from < WV_LONG_PHD)
		{
			size_t		skip = WV_LONG_PHD - walked_from;

			if (skip < len)
				walrec_data(&check->records, data + skip, len - skip);
		}
		else
			walrec_data(&check->records, data, len);
	}
	check->nbytes += len;
}

/* All content was seen: is it complete? */
void
walcheck_finish(WalCheck *check)
{
	if (check->kind != WALVAULT_FILE_SEGMENT &&
		check->kind != WALVAULT_FILE_PARTIAL)
		return;

	if (!wv_is_valid_segment_size(check->nbytes))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has invalid size %llu bytes: a WAL segment must be a power of two between 1 MB and 1 GB",
				 check->src_path, (unsigned long long) check->nbytes);
	/* any valid size is far larger than the header, but be careful */
	if (!check->have_long_header)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" is too short for a WAL page header",
				 check->src_path);
	if ((uint64_t) check->seg_size != check->nbytes)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has %llu bytes, but its page header gives WAL segment size %u",
				 check->src_path, (unsigned long long) check->nbytes,
				 (unsigned int) check->seg_size);
	if (check->walk_records)
		walrec_end_segment(&check->records);
}

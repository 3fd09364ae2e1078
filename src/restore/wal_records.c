/*-------------------------------------------------------------------------
 *
 * wal_records.c
 *	  The records of a restored WAL segment, and their CRCs.
 *
 * Recovery takes a record whose CRC does not match for the end of the WAL:
 * it finishes there and promotes, and every later transaction is lost.  A
 * page header check (wal_check.c) cannot see a byte changed inside a
 * record, so a full segment is walked record by record, as the server's
 * WAL reader does, while it streams through the restore: nothing is
 * buffered but a record's fixed header and a running CRC-32C.
 *
 *	Every page header's continuation flag and remaining length must agree
 *	with the record in progress; a record whose continuation never came
 *	(XLP_FIRST_IS_OVERWRITE_CONTRECORD: the server overwrote an incomplete
 *	record at the end of the WAL after a crash) is dropped, as the reader
 *	drops it.  Each record's length must be sane, its xl_prev must point at
 *	the record before it, and its CRC must match: over the data after the
 *	fixed header, then the header up to xl_crc.  The bytes that align the
 *	next record must be zero.  After an XLOG_SWITCH record, every byte to
 *	the end of the segment must be zero (the server zeroes those pages);
 *	nowhere else may a record be missing: a full segment is records to its
 *	end.
 *
 *	A record may begin in one segment and end in the next (or, if it is
 *	longer than a segment, several later).  What this segment holds of a
 *	record begun before it (the "head piece") cannot be checked from this
 *	segment alone: its CRC register is kept (from zero, with the piece's
 *	first bytes aside, since they may still be header bytes), and fetch.c
 *	reads the end of the segments before it into a second walk, from the
 *	record's start, which the first record that begins here names in its
 *	xl_prev.  CRC-32C being linear, the two registers combine into the
 *	record's CRC without the piece being read twice.  A record that does
 *	not end in this segment is checked when the segment it ends in is
 *	restored, which is before recovery can replay it.
 *
 * The layouts, flags and CRC-32C are the server's own (access/xlogrecord.h,
 * access/xlog_internal.h, port/pg_crc32c.h), so this is the one file of the
 * program that includes PostgreSQL headers; its state is declared in
 * restore.h with standard types, and sized to match here.
 *
 * src/restore/wal_records.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include "access/rmgr.h"
#include "access/xlog_internal.h"
#include "access/xlogrecord.h"
#include "catalog/pg_control.h"
#include "port/pg_crc32c.h"

#include "restore.h"

/* how the walk started */
#define WALREC_MODE_SEGMENT	0	/* the segment being restored, from byte 0 */
#define WALREC_MODE_PREFIX	1	/* from a record's start, in earlier ones */
#define WALREC_MODE_SCAN	2	/* from a segment's byte 0, before ours */

/* where in the WAL the next byte is */
#define WALREC_SEGMENT_START 0	/* the first page header comes */
#define WALREC_HEAD			1	/* in the head piece */
#define WALREC_RECORD		2	/* in a record (rec_have > 0) or before one */
#define WALREC_PADDING		3	/* between a record's end and MAXALIGN */
#define WALREC_ZEROS		4	/* after a switch: zeroes to the end */

/*
 * No record is longer: the server's limit is a little less than 1 GB
 * (XLogRecordMaxSize in 16 and later, palloc's limit before).
 */
#define WALREC_MAX_RECORD	UINT32_C(0x40000000)

/* CRC-32C's polynomial, bit-reflected, as the register holds it */
#define WALREC_CRC32C_POLY	UINT32_C(0x82F63B78)

StaticAssertDecl(SizeOfXLogRecord == sizeof(((WalRecordWalk *) 0)->rec_hdr),
				 "rec_hdr must hold a record's fixed header");
StaticAssertDecl(SizeOfXLogLongPHD <= sizeof(((WalRecordWalk *) 0)->phdr),
				 "phdr must hold a long page header");
StaticAssertDecl(SizeOfXLogRecord == sizeof(((WalRecordWalk *) 0)->head_buf),
				 "head_buf must hold what may be header bytes");

static uint32 walrec_crc_multiply(uint32 a, uint32 b);
static uint32 walrec_crc_shift(uint32 crc, uint64 nbytes);
static size_t walrec_nonzero(const unsigned char *p, size_t len);
static bool walrec_all_zero(const unsigned char *p, size_t len);
static bool walrec_zeros_allowed(const WalRecordWalk *walk);
static void walrec_page(WalRecordWalk *walk, uint32 hdr_size);
static void walrec_record_header(WalRecordWalk *walk);
static void walrec_record_end(WalRecordWalk *walk);
static size_t walrec_consume(WalRecordWalk *walk, const unsigned char *data,
							 size_t len);
static bool walrec_is_switch(const unsigned char *hdr);

/*
 * a * b modulo CRC-32C's polynomial, in the bit-reflected form of the
 * register (the top bit is x^0).
 */
static uint32
walrec_crc_multiply(uint32 a, uint32 b)
{
	uint32		product = 0;

	for (uint32 m = UINT32_C(0x80000000); m != 0; m >>= 1)
	{
		if (a & m)
			product ^= b;
		b = (b & 1) ? (b >> 1) ^ WALREC_CRC32C_POLY : b >> 1;
	}
	return product;
}

/*
 * The CRC register crc after nbytes more zero bytes: crc * x^(8 nbytes).
 * Since the register's update is linear, the register over A then B is
 * walrec_crc_shift(register over A, |B|) xor (register over B from zero).
 */
static uint32
walrec_crc_shift(uint32 crc, uint64 nbytes)
{
	uint32		power = UINT32_C(0x40000000);	/* x^1, then x^2^k */
	uint32		op = UINT32_C(0x80000000);	/* x^0 */
	uint64		nbits = nbytes * 8;

	while (nbits != 0)
	{
		if (nbits & 1)
			op = walrec_crc_multiply(op, power);
		power = walrec_crc_multiply(power, power);
		nbits >>= 1;
	}
	return walrec_crc_multiply(op, crc);
}

/*
 * Index of the first nonzero byte of p, len if there is none.  Eight bytes
 * at a time: after a WAL switch, most of a segment may be zeroes.
 */
static size_t
walrec_nonzero(const unsigned char *p, size_t len)
{
	size_t		i = 0;

	for (; i + sizeof(uint64) <= len; i += sizeof(uint64))
	{
		uint64		word;

		memcpy(&word, p + i, sizeof(word));
		if (word != 0)
			break;
	}
	for (; i < len; i++)
		if (p[i] != 0)
			return i;
	return len;
}

static bool
walrec_all_zero(const unsigned char *p, size_t len)
{
	return walrec_nonzero(p, len) == len;
}

/* Is the record an XLOG_SWITCH? hdr is a whole fixed header. */
static bool
walrec_is_switch(const unsigned char *hdr)
{
	XLogRecord	rec;

	memcpy(&rec, hdr, SizeOfXLogRecord);
	return rec.xl_rmid == RM_XLOG_ID &&
		(rec.xl_info & ~XLR_INFO_MASK) == XLOG_SWITCH;
}

/*
 * Zeroes where a record must begin are allowed only right after a head
 * piece, before any record of this segment: the record it ends may be a
 * switch, which only the check of the head piece can tell (fetch.c).
 */
static bool
walrec_zeros_allowed(const WalRecordWalk *walk)
{
	return walk->mode == WALREC_MODE_SEGMENT && walk->head_ended &&
		walk->nrecords == 0 && !walk->first_prev_known;
}

/* Walk the segment segno, from its first byte. */
void
walrec_begin_segment(WalRecordWalk *walk, const char *src_path,
					 uint32_t blcksz, uint32_t seg_size, uint64_t segno)
{
	memset(walk, 0, sizeof(*walk));
	walk->src_path = src_path;
	walk->mode = WALREC_MODE_SEGMENT;
	walk->state = WALREC_SEGMENT_START;
	walk->blcksz = blcksz;
	walk->seg_size = seg_size;
	walk->seg_lsn = segno * seg_size;
}

/*
 * Walk earlier segments up to the one being restored: from the record that
 * begins at start_lsn (at_record), or from the first byte of the segment
 * start_lsn is the start of (to find the last record that begins in it).
 */
void
walrec_begin_prefix(WalRecordWalk *walk, const char *src_path,
					uint32_t blcksz, uint32_t seg_size, uint64_t start_lsn,
					bool at_record)
{
	memset(walk, 0, sizeof(*walk));
	walk->src_path = src_path;
	walk->blcksz = blcksz;
	walk->seg_size = seg_size;
	walk->seg_lsn = start_lsn - start_lsn % seg_size;
	walk->off = start_lsn % seg_size;
	if (at_record)
	{
		walk->mode = WALREC_MODE_PREFIX;
		walk->state = WALREC_RECORD;
	}
	else
	{
		walk->mode = WALREC_MODE_SCAN;
		walk->state = WALREC_SEGMENT_START;
	}
}

/* The walk goes on into the next segment, read from src_path. */
void
walrec_next_segment(WalRecordWalk *walk, const char *src_path)
{
	walk->src_path = src_path;
	walk->seg_lsn += walk->seg_size;
	walk->off = 0;
}

/* A page header of hdr_size bytes is complete in walk->phdr. */
static void
walrec_page(WalRecordWalk *walk, uint32 hdr_size)
{
	XLogPageHeaderData hdr;
	uint64		page_off = walk->off - hdr_size;
	XLogRecPtr	page_lsn = walk->seg_lsn + page_off;
	bool		cont;
	bool		overwrite;
	size_t		pad_start = offsetof(XLogPageHeaderData, xlp_rem_len) +
		sizeof(hdr.xlp_rem_len);

	if (walrec_all_zero(walk->phdr, hdr_size))
	{
		if (walk->state == WALREC_RECORD && walk->rec_have == 0 &&
			walrec_zeros_allowed(walk))
		{
			walk->head_then_zeros = true;
			walk->state = WALREC_ZEROS;
			return;
		}
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has a zeroed page at offset %llu, but no WAL switch record precedes it",
				 walk->src_path, (unsigned long long) page_off);
	}

	memcpy(&hdr, walk->phdr, sizeof(hdr));
	if (hdr.xlp_pageaddr != page_lsn)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has WAL location %X/%08X in the page header at offset %llu, expected %X/%08X",
				 walk->src_path, LSN_FORMAT_ARGS(hdr.xlp_pageaddr),
				 (unsigned long long) page_off, LSN_FORMAT_ARGS(page_lsn));
	/* the server zeroes a page before it fills in the header */
	if (!walrec_all_zero(walk->phdr + pad_start, SizeOfXLogShortPHD - pad_start))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has nonzero padding in the page header at offset %llu",
				 walk->src_path, (unsigned long long) page_off);
	if (page_off == 0 && walk->mode != WALREC_MODE_PREFIX)
		walk->first_tli = hdr.xlp_tli;

	cont = (hdr.xlp_info & XLP_FIRST_IS_CONTRECORD) != 0;
	overwrite = (hdr.xlp_info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) != 0;

	switch (walk->state)
	{
		case WALREC_SEGMENT_START:
			if (cont)
			{
				if (hdr.xlp_rem_len == 0 || hdr.xlp_rem_len > WALREC_MAX_RECORD)
					wv_error(WV_ERROR_CONTENT,
							 "restored content of \"%s\" has invalid remaining length %u of a continued WAL record in its first page header",
							 walk->src_path, (unsigned int) hdr.xlp_rem_len);
				walk->head_present = true;
				walk->head_len = 0;
				walk->head_left = hdr.xlp_rem_len;
				walk->state = WALREC_HEAD;
			}
			else
				walk->state = WALREC_RECORD;
			break;

		case WALREC_HEAD:
			if (!cont && overwrite)
			{
				/* the record begun before this segment was never completed */
				walk->head_present = false;
				walk->state = WALREC_RECORD;
				break;
			}
			if (!cont || hdr.xlp_rem_len != walk->head_left)
				wv_error(WV_ERROR_CONTENT,
						 "restored content of \"%s\" does not continue the WAL record of the previous page at offset %llu (page header: %s, %u bytes remaining; expected %u)",
						 walk->src_path, (unsigned long long) page_off,
						 cont ? "continued" : "not continued",
						 (unsigned int) hdr.xlp_rem_len,
						 (unsigned int) walk->head_left);
			break;

		case WALREC_RECORD:
			if (walk->rec_have == 0)
			{
				if (cont)
					wv_error(WV_ERROR_CONTENT,
							 "restored content of \"%s\" has a page header at offset %llu that continues a WAL record, but the previous record ended",
							 walk->src_path, (unsigned long long) page_off);
			}
			else if (cont &&
					 hdr.xlp_rem_len == walk->rec_tot_len - walk->rec_have)
			{
				/* the record goes on */
			}
			else if (!cont && overwrite)
			{
				/*
				 * The record was never completed; the server wrote over its
				 * missing end, and the reader drops it.  Its xl_prev chain
				 * goes on from the record before it.
				 */
				walk->rec_have = 0;
			}
			else
				wv_error(WV_ERROR_CONTENT,
						 "restored content of \"%s\" does not continue the WAL record at %X/%08X on the page at offset %llu (page header: %s, %u bytes remaining; expected %u)",
						 walk->src_path, LSN_FORMAT_ARGS(walk->rec_lsn),
						 (unsigned long long) page_off,
						 cont ? "continued" : "not continued",
						 (unsigned int) hdr.xlp_rem_len,
						 (unsigned int) (walk->rec_tot_len - walk->rec_have));
			break;

		default:
			/* padding ends on an aligned offset, never past a page */
			wv_error(WV_ERROR_CONTENT,
					 "restored content of \"%s\" has a page header at offset %llu inside padding",
					 walk->src_path, (unsigned long long) page_off);
	}
}

/* The fixed header of the record in progress is complete. */
static void
walrec_record_header(WalRecordWalk *walk)
{
	XLogRecord	rec;

	memcpy(&rec, walk->rec_hdr, SizeOfXLogRecord);
	if (walk->prev_lsn != InvalidXLogRecPtr && rec.xl_prev != walk->prev_lsn)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has a WAL record at %X/%08X whose previous record is at %X/%08X, but it says %X/%08X",
				 walk->src_path, LSN_FORMAT_ARGS(walk->rec_lsn),
				 LSN_FORMAT_ARGS(walk->prev_lsn),
				 LSN_FORMAT_ARGS(rec.xl_prev));
	if (walk->mode == WALREC_MODE_SEGMENT && !walk->first_prev_known)
	{
		walk->first_prev_known = true;
		walk->first_prev = rec.xl_prev;
	}
	INIT_CRC32C(walk->rec_crc);
}

/* The record in progress is complete: check its CRC. */
static void
walrec_record_end(WalRecordWalk *walk)
{
	XLogRecord	rec;
	pg_crc32c	crc = walk->rec_crc;

	memcpy(&rec, walk->rec_hdr, SizeOfXLogRecord);
	COMP_CRC32C(crc, walk->rec_hdr, offsetof(XLogRecord, xl_crc));
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, rec.xl_crc))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has a WAL record at %X/%08X with an incorrect CRC: the file is damaged",
				 walk->src_path, LSN_FORMAT_ARGS(walk->rec_lsn));

	walk->prev_lsn = walk->rec_lsn;
	walk->nrecords++;
	walk->rec_have = 0;
	if (walrec_is_switch(walk->rec_hdr))
		walk->state = WALREC_ZEROS;
	else
		walk->state = (walk->off % MAXIMUM_ALIGNOF) != 0 ?
			WALREC_PADDING : WALREC_RECORD;
}

/*
 * Take the bytes of data, at most len, that the state in progress wants
 * from this page (never a page header), and advance walk->off past them.
 * Returns how many were taken.
 */
static size_t
walrec_consume(WalRecordWalk *walk, const unsigned char *data, size_t len)
{
	size_t		n = 0;

	switch (walk->state)
	{
		case WALREC_HEAD:
			n = Min(len, (size_t) walk->head_left);
			if (walk->mode == WALREC_MODE_SEGMENT)
			{
				size_t		to_buf = 0;

				/* the piece's first bytes may belong to the header */
				if (walk->head_len < SizeOfXLogRecord)
				{
					to_buf = Min(n, SizeOfXLogRecord - walk->head_len);
					memcpy(walk->head_buf + walk->head_len, data, to_buf);
				}
				COMP_CRC32C(walk->head_crc, data + to_buf, n - to_buf);
			}
			walk->head_len += n;
			walk->head_left -= n;
			walk->off += n;
			if (walk->head_left == 0)
			{
				walk->head_ended = true;
				walk->state = (walk->off % MAXIMUM_ALIGNOF) != 0 ?
					WALREC_PADDING : WALREC_RECORD;
			}
			return n;

		case WALREC_PADDING:
			n = Min(len, (size_t) (MAXIMUM_ALIGNOF - walk->off % MAXIMUM_ALIGNOF));
			if (!walrec_all_zero(data, n))
				wv_error(WV_ERROR_CONTENT,
						 "restored content of \"%s\" has nonzero bytes at offset %llu, in the padding after a WAL record",
						 walk->src_path,
						 (unsigned long long) (walk->off + walrec_nonzero(data, n)));
			walk->off += n;
			if (walk->off % MAXIMUM_ALIGNOF == 0)
				walk->state = WALREC_RECORD;
			return n;

		case WALREC_ZEROS:
			n = len;
			if (!walrec_all_zero(data, n))
				wv_error(WV_ERROR_CONTENT,
						 "restored content of \"%s\" has nonzero bytes at offset %llu, after a WAL switch record, where the server writes zeroes",
						 walk->src_path,
						 (unsigned long long) (walk->off + walrec_nonzero(data, n)));
			walk->off += n;
			return n;

		case WALREC_RECORD:
			break;

		default:
			Assert(false);
			return len;
	}

	if (walk->rec_have < SizeOfXLogRecord)
	{
		uint32		had = walk->rec_have;

		if (had == 0)
			walk->rec_lsn = walk->seg_lsn + walk->off;
		n = Min(len, (size_t) (SizeOfXLogRecord - had));
		memcpy(walk->rec_hdr + had, data, n);
		walk->rec_have += n;
		walk->off += n;

		if (had < sizeof(uint32) && walk->rec_have >= sizeof(uint32))
		{
			memcpy(&walk->rec_tot_len, walk->rec_hdr, sizeof(uint32));
			if (walk->rec_tot_len == 0 && walrec_zeros_allowed(walk) &&
				walrec_all_zero(walk->rec_hdr, walk->rec_have))
			{
				walk->head_then_zeros = true;
				walk->state = WALREC_ZEROS;
				walk->rec_have = 0;
				return n;
			}
			if (walk->rec_tot_len == 0)
				wv_error(WV_ERROR_CONTENT,
						 "restored content of \"%s\" has zeroes at %X/%08X, where a WAL record must begin (no WAL switch record precedes them)",
						 walk->src_path, LSN_FORMAT_ARGS(walk->rec_lsn));
			if (walk->rec_tot_len < SizeOfXLogRecord ||
				walk->rec_tot_len > WALREC_MAX_RECORD)
				wv_error(WV_ERROR_CONTENT,
						 "restored content of \"%s\" has a WAL record at %X/%08X with invalid length %u",
						 walk->src_path, LSN_FORMAT_ARGS(walk->rec_lsn),
						 (unsigned int) walk->rec_tot_len);
		}
		if (walk->rec_have == SizeOfXLogRecord)
		{
			walrec_record_header(walk);
			if (walk->rec_tot_len == SizeOfXLogRecord)
				walrec_record_end(walk);
		}
		return n;
	}

	n = Min(len, (size_t) (walk->rec_tot_len - walk->rec_have));
	COMP_CRC32C(walk->rec_crc, data, n);
	walk->rec_have += n;
	walk->off += n;
	if (walk->rec_have == walk->rec_tot_len)
		walrec_record_end(walk);
	return n;
}

/*
 * The next len bytes of the segment, from walk->off on.  Dies on anything
 * wrong.
 */
void
walrec_data(WalRecordWalk *walk, const unsigned char *data, size_t len)
{
	while (len > 0)
	{
		uint32		in_page;
		uint32		hdr_size;
		size_t		n;

		if (walk->off >= walk->seg_size)
			wv_error(WV_ERROR_CONTENT,
					 "restored content of \"%s\" exceeds its WAL segment size (%u bytes)",
					 walk->src_path, (unsigned int) walk->seg_size);

		in_page = (uint32) (walk->off % walk->blcksz);
		hdr_size = walk->off < walk->blcksz ? SizeOfXLogLongPHD :
			SizeOfXLogShortPHD;

		if (walk->state != WALREC_ZEROS && in_page < hdr_size)
		{
			n = Min(len, (size_t) (hdr_size - in_page));
			memcpy(walk->phdr + in_page, data, n);
			walk->off += n;
			if (in_page + n == hdr_size)
				walrec_page(walk, hdr_size);
		}
		else
			n = walrec_consume(walk, data,
							   Min(len, (size_t) (walk->blcksz - in_page)));
		data += n;
		len -= n;
	}
}

/* The segment is complete. */
void
walrec_end_segment(WalRecordWalk *walk)
{
	if (walk->off != walk->seg_size)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" ends at offset %llu, before the end of its WAL segment (%u bytes)",
				 walk->src_path, (unsigned long long) walk->off,
				 (unsigned int) walk->seg_size);
}

/*
 * Does the segment walked hold the end of a record that began before it?
 * If so, *start_known says whether a later record named its start, in
 * *start_lsn.
 */
bool
walrec_head_to_check(const WalRecordWalk *walk, uint64_t *start_lsn,
					 bool *start_known)
{
	*start_known = walk->first_prev_known;
	*start_lsn = walk->first_prev;
	return walk->head_present && walk->head_ended;
}

/* Did a walk of earlier segments end inside a record? */
bool
walrec_prefix_found(const WalRecordWalk *prefix)
{
	return prefix->state == WALREC_RECORD && prefix->rec_have > 0;
}

/*
 * Did a walk from the start of a segment find no record beginning in it
 * (the segment is all the middle of one long record)?
 */
bool
walrec_prefix_in_head(const WalRecordWalk *prefix)
{
	return prefix->mode == WALREC_MODE_SCAN && prefix->state == WALREC_HEAD;
}

/*
 * Check the record whose beginning the walk prefix (up to the end of the
 * segment before) holds, and whose end is walk's head piece.
 */
void
walrec_check_head(const WalRecordWalk *walk, const WalRecordWalk *prefix,
				  const char *prefix_path)
{
	unsigned char hdr[SizeOfXLogRecord];
	uint32		have = prefix->rec_have;
	uint32		hdr_in_head;
	uint32		buffered;
	pg_crc32c	crc;
	XLogRecord	rec;

	if (!walrec_prefix_found(prefix) ||
		(walk->first_prev_known && prefix->rec_lsn != walk->first_prev))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" begins with the end of a WAL record that does not begin at %X/%08X in \"%s\", where the next record says it does",
				 walk->src_path, LSN_FORMAT_ARGS(walk->first_prev),
				 prefix_path);
	if ((uint64) have + walk->head_len != prefix->rec_tot_len)
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" holds %u bytes of the WAL record at %X/%08X, but that record has %u bytes and \"%s\" holds %u of them",
				 walk->src_path, (unsigned int) walk->head_len,
				 LSN_FORMAT_ARGS(prefix->rec_lsn),
				 (unsigned int) prefix->rec_tot_len, prefix_path,
				 (unsigned int) have);

	/* the header may lie on both sides */
	hdr_in_head = have < SizeOfXLogRecord ? SizeOfXLogRecord - have : 0;
	memcpy(hdr, prefix->rec_hdr, Min(have, (uint32) SizeOfXLogRecord));
	memcpy(hdr + (SizeOfXLogRecord - hdr_in_head), walk->head_buf, hdr_in_head);

	/* the data: the prefix's register, then the head piece's */
	if (have >= SizeOfXLogRecord)
		crc = prefix->rec_crc;
	else
		INIT_CRC32C(crc);
	buffered = Min(walk->head_len, (uint32) SizeOfXLogRecord);
	COMP_CRC32C(crc, walk->head_buf + hdr_in_head, buffered - hdr_in_head);
	if (walk->head_len > SizeOfXLogRecord)
		crc = walrec_crc_shift(crc, walk->head_len - SizeOfXLogRecord) ^
			walk->head_crc;
	COMP_CRC32C(crc, hdr, offsetof(XLogRecord, xl_crc));
	FIN_CRC32C(crc);

	memcpy(&rec, hdr, SizeOfXLogRecord);
	if (!EQ_CRC32C(crc, rec.xl_crc))
		wv_error(WV_ERROR_CONTENT,
				 "the WAL record at %X/%08X, from \"%s\" into \"%s\", has an incorrect CRC: a file is damaged",
				 LSN_FORMAT_ARGS(prefix->rec_lsn), prefix_path,
				 walk->src_path);

	if (walk->head_then_zeros && !walrec_is_switch(hdr))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has zeroes after the WAL record at %X/%08X, which is not a WAL switch record",
				 walk->src_path, LSN_FORMAT_ARGS(prefix->rec_lsn));
	if (!walk->head_then_zeros && walk->first_prev_known &&
		walrec_is_switch(hdr))
		wv_error(WV_ERROR_CONTENT,
				 "restored content of \"%s\" has WAL records after the WAL switch record at %X/%08X",
				 walk->src_path, LSN_FORMAT_ARGS(prefix->rec_lsn));
}

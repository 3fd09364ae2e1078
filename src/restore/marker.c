/*-------------------------------------------------------------------------
 *
 * marker.c
 *	  Before saying "not in the archive", make sure the archive is there.
 *
 * Exit status 1 ends archive recovery: the server takes the missing file
 * for the end of the WAL and promotes.  An archive that is not there looks
 * just like one that lacks the file -- an unmounted mount point is an empty
 * directory, a wrong prefix an empty listing -- so "not found" is only
 * said once the archive's marker is found: the file the module writes
 * there before it archives anything (archive_marker.c, wal_names.h).
 * Without it, the answer is an error, and recovery stops instead of
 * promoting at a gap that is not one.
 *
 * The marker must also name the system whose data directory asks, when
 * that is known: an archive of another system has none of our files, and
 * that is not the end of ours.
 *
 * Archives written before markers existed, or by an archive_command, have
 * none: --no-marker-check restores from them as before (README), or a
 * marker can be written into them by hand.
 *
 * The check runs on the "not found" path only, once per process: a
 * restore that finds its file pays nothing.
 *
 * src/restore/marker.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "restore.h"

static bool marker_required = true;
static bool marker_seen = false;

typedef struct MarkerBuffer
{
	char		data[WALVAULT_MARKER_MAX + 1];
	size_t		len;
} MarkerBuffer;

static void
marker_data(void *arg, const unsigned char *data, size_t len)
{
	MarkerBuffer *buf = (MarkerBuffer *) arg;
	size_t		room = sizeof(buf->data) - buf->len;

	/* more than the most a marker holds is kept as "too long" */
	if (len > room)
		len = room;
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
}

static void
marker_restart(void *arg)
{
	((MarkerBuffer *) arg)->len = 0;
}

/* --no-marker-check */
void
wv_marker_set_required(bool required)
{
	marker_required = required;
}

bool
wv_marker_is_required(void)
{
	return marker_required;
}

/*
 * A file was not found in source: return only if the archive's marker is
 * there and, if server names a system, names the same one.  Otherwise the
 * process ends with an error (report.c), never with "not found".
 */
void
wv_marker_check(RestoreSource *source, const ServerIdentity *server)
{
	WvStoredFile file;
	MarkerBuffer buf;
	WvContentSink sink;
	uint64_t	sysid;

	if (!marker_required || marker_seen)
		return;

	buf.len = 0;
	sink.arg = &buf;
	sink.data = marker_data;
	sink.restart = marker_restart;
	if (!source->find(source, WALVAULT_MARKER_NAME, &file) ||
		file.method != WALVAULT_CODEC_NONE ||
		!source->read(source, &file, &sink))
	{
		wv_set_error_hint("A file is only reported missing from an archive that carries the marker pg_walvault writes there.  For an archive written before pg_walvault 1.3 or by an archive_command, write the marker (see the README) or pass --no-marker-check.");
		wv_error(WV_ERROR_IO,
				 "%s has no archive marker \"%s\": it is not a pg_walvault archive, or it is not mounted or reachable",
				 source->describe(source), WALVAULT_MARKER_NAME);
	}

	if (!walvault_marker_parse(buf.data, buf.len, &sysid))
		wv_error(WV_ERROR_CONTENT,
				 "archive marker \"%s\" is not valid: it must hold a line \"system_identifier = N\" and at most %d bytes",
				 file.location, WALVAULT_MARKER_MAX);
	if (server != NULL && server->have_sysid && sysid != server->sysid)
		wv_error(WV_ERROR_CONTENT,
				 "%s belongs to another database system: its marker names system identifier %llu, the data directory's is %llu",
				 source->describe(source), (unsigned long long) sysid,
				 (unsigned long long) server->sysid);

	wv_verbose("%s carries the marker of system %llu",
			   source->describe(source), (unsigned long long) sysid);
	marker_seen = true;
}

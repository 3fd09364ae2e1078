/*-------------------------------------------------------------------------
 *
 * durable_copy.c
 *	  How many files a second this machine's disk can archive durably, with
 *	  no PostgreSQL at all: the ceiling for bench/small_drain.sh.
 *
 *	  cc -O2 -o /tmp/durable_copy bench/durable_copy.c -lpthread
 *	  /tmp/durable_copy SRCDIR DSTDIR THREADS [BATCH [MODE]]
 *
 * Every regular file of SRCDIR is copied into DSTDIR the way an archive
 * module must (each copy reported only once its content and name are
 * durable): create a temporary file, copy, fsync it, rename it to its name,
 * fsync DSTDIR.  THREADS threads take files from one shared list.
 *
 * BATCH > 1: each thread takes BATCH files at a time, copies them all and
 * starts their writeback (sync_file_range), then fsyncs and renames each,
 * and fsyncs the directory once for the batch: more writes in flight at
 * once for the same number of threads.
 *
 * MODE: "buffered" (default; read() and write() through a 1 MB buffer),
 * "direct" (the copy written with O_DIRECT), "cfr" (copy_file_range()).
 *
 * Prints files/s.  DSTDIR must be empty, on the file system to measure, and
 * SRCDIR's files should be in the page cache (cat them to /dev/null), as
 * recent WAL is.
 *
 * bench/durable_copy.c
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DC_BUFSIZE	(1024 * 1024)
#define DC_MAXBATCH 64

typedef enum
{
	DC_BUFFERED,
	DC_DIRECT,
	DC_CFR
} DcMode;

static char **dc_names;
static int	dc_nnames;
static atomic_int dc_next;
static const char *dc_src;
static const char *dc_dst;
static int	dc_batch = 1;
static DcMode dc_mode = DC_BUFFERED;

static void
dc_fail(const char *what, const char *path)
{
	fprintf(stderr, "durable_copy: %s \"%s\": %s\n", what, path,
			strerror(errno));
	exit(2);
}

/* copy src into the new file temp; returns its descriptor, still open */
static int
dc_copy(const char *src, const char *temp, char *buf)
{
	int			in = open(src, O_RDONLY);
	int			out;
	ssize_t		n;

	if (in < 0)
		dc_fail("could not open", src);
	out = open(temp, O_WRONLY | O_CREAT | O_EXCL |
			   (dc_mode == DC_DIRECT ? O_DIRECT : 0), 0600);
	if (out < 0)
		dc_fail("could not create", temp);
	if (dc_mode == DC_CFR)
	{
		while ((n = copy_file_range(in, NULL, out, NULL, DC_BUFSIZE, 0)) > 0)
			;
		if (n < 0)
			dc_fail("could not copy into", temp);
	}
	else
	{
		while ((n = read(in, buf, DC_BUFSIZE)) > 0)
			if (write(out, buf, n) != n)
				dc_fail("could not write", temp);
		if (n < 0)
			dc_fail("could not read", src);
	}
	close(in);
	return out;
}

static void *
dc_thread(void *arg)
{
	char	   *buf;
	int			dirfd = open(dc_dst, O_RDONLY);

	(void) arg;
	if (dirfd < 0)
		dc_fail("could not open", dc_dst);
	if (posix_memalign((void **) &buf, 4096, DC_BUFSIZE) != 0)
		dc_fail("could not allocate a buffer for", dc_dst);

	for (;;)
	{
		int			first = atomic_fetch_add(&dc_next, dc_batch);
		int			n;
		int			fds[DC_MAXBATCH];
		char		temp[DC_MAXBATCH][4096];
		char		dest[DC_MAXBATCH][4096];

		if (first >= dc_nnames)
			break;
		n = dc_nnames - first < dc_batch ? dc_nnames - first : dc_batch;
		for (int i = 0; i < n; i++)
		{
			char		src[4096];

			snprintf(src, sizeof(src), "%s/%s", dc_src, dc_names[first + i]);
			snprintf(temp[i], sizeof(temp[i]), "%s/.%s.tmp", dc_dst,
					 dc_names[first + i]);
			snprintf(dest[i], sizeof(dest[i]), "%s/%s", dc_dst,
					 dc_names[first + i]);
			fds[i] = dc_copy(src, temp[i], buf);
			/* a batch: get every file of it on its way to the disk first */
			if (n > 1)
				(void) sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
		}
		for (int i = 0; i < n; i++)
		{
			if (fsync(fds[i]) != 0)
				dc_fail("could not fsync", temp[i]);
			close(fds[i]);
			if (rename(temp[i], dest[i]) != 0)
				dc_fail("could not rename", temp[i]);
		}
		if (fsync(dirfd) != 0)
			dc_fail("could not fsync", dc_dst);
	}
	free(buf);
	close(dirfd);
	return NULL;
}

int
main(int argc, char **argv)
{
	DIR		   *dir;
	struct dirent *de;
	int			nthreads;
	int			max = 1024;
	pthread_t  *threads;
	struct timespec start,
				end;
	double		secs;

	if (argc < 4 || argc > 6)
	{
		fprintf(stderr, "usage: durable_copy SRCDIR DSTDIR THREADS [BATCH [buffered|direct|cfr]]\n");
		return 2;
	}
	dc_src = argv[1];
	dc_dst = argv[2];
	nthreads = atoi(argv[3]);
	if (argc > 4)
		dc_batch = atoi(argv[4]);
	if (argc > 5)
		dc_mode = strcmp(argv[5], "direct") == 0 ? DC_DIRECT :
			strcmp(argv[5], "cfr") == 0 ? DC_CFR : DC_BUFFERED;
	if (nthreads < 1 || nthreads > 256 || dc_batch < 1 || dc_batch > DC_MAXBATCH)
	{
		fprintf(stderr, "durable_copy: THREADS must be 1..256 and BATCH 1..%d\n",
				DC_MAXBATCH);
		return 2;
	}

	if ((dir = opendir(dc_src)) == NULL)
		dc_fail("could not open", dc_src);
	dc_names = malloc(sizeof(char *) * max);
	while ((de = readdir(dir)) != NULL)
	{
		if (de->d_name[0] == '.')
			continue;
		if (dc_nnames == max)
			dc_names = realloc(dc_names, sizeof(char *) * (max *= 2));
		dc_names[dc_nnames++] = strdup(de->d_name);
	}
	closedir(dir);

	threads = malloc(sizeof(pthread_t) * nthreads);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&threads[i], NULL, dc_thread, NULL);
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &end);

	secs = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
	printf("%d files, %d threads, batch %d, %s: %.2f s, %.0f files/s\n",
		   dc_nnames, nthreads, dc_batch, argc > 5 ? argv[5] : "buffered",
		   secs, dc_nnames / secs);
	return 0;
}

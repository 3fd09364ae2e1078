/*
 * latencyfs: a pass-through FUSE file system that adds fixed delays to
 * fsync, open and read, for benchmarks only.
 *
 * It stands for archive storage where each operation costs a round trip (a
 * network file system, an object store, a cloud volume, a RAID controller
 * with its write cache off) on a machine whose local disk does not.
 * Everything is passed to a backing directory, and:
 *
 *	fsync() of a file or a directory sleeps LATENCYFS_DELAY_MS milliseconds
 *	(default 10) after the real fsync: the cost of making data durable;
 *	open() of a file sleeps LATENCYFS_OPEN_DELAY_MS milliseconds (default
 *	0): the round trip that starts reading a file from a network store;
 *	read() sleeps LATENCYFS_READ_DELAY_US microseconds (default 0) per
 *	request (FUSE reads at most 128 kB at a time): a bound on the bandwidth
 *	of one stream, as one connection to a network store has.
 *
 * FUSE runs requests in several threads, so the delays of different files
 * overlap, as they would over a network.
 *
 *   latencyfs BACKING_DIR MOUNT_POINT -o allow_other,default_permissions
 *
 * Run it as root (it chowns what it creates to the caller).
 *
 * Used by bench/drain.sh with ARCHIVE_LATENCY_MS, and by bench/restore.sh
 * for the archive it restores from; not part of pg_walvault.
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fuse.h>

static const char *backing;
static long delay_ms = 10;
static long open_delay_ms = 0;
static long read_delay_us = 0;

/* The backing path of a path in the mount. */
static int
lfs_path(char *out, const char *path)
{
	if (snprintf(out, PATH_MAX, "%s%s", backing, path) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

#define BACKING(var, path) \
	char var[PATH_MAX]; \
	do { int rc_ = lfs_path(var, path); if (rc_ < 0) return rc_; } while (0)

/*
 * The daemon runs as root (only root may open /dev/fuse here); what it
 * creates belongs to the process that asked, and the kernel checks
 * permissions (default_permissions).
 */
static void
lfs_own(const char *p)
{
	struct fuse_context *ctx = fuse_get_context();

	if (lchown(p, ctx->uid, ctx->gid) != 0)
		perror(p);
}

static void
lfs_sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void
lfs_delay(void)
{
	lfs_sleep_us(delay_ms * 1000);
}

static int
lfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (fi != NULL)
		return fstat(fi->fh, st) == 0 ? 0 : -errno;
	{
		BACKING(p, path);
		return lstat(p, st) == 0 ? 0 : -errno;
	}
}

static int
lfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	DIR		   *d;
	struct dirent *de;
	BACKING(p, path);

	d = opendir(p);
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL)
		if (fill(buf, de->d_name, NULL, 0, 0))
			break;
	closedir(d);
	return 0;
}

static int
lfs_open(const char *path, struct fuse_file_info *fi)
{
	int			fd;
	BACKING(p, path);

	if (open_delay_ms > 0)
		lfs_sleep_us(open_delay_ms * 1000);
	fd = open(p, fi->flags);
	if (fd < 0)
		return -errno;
	fi->fh = fd;
	return 0;
}

static int
lfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int			fd;
	BACKING(p, path);

	fd = open(p, fi->flags | O_CREAT, mode);
	if (fd < 0)
		return -errno;
	lfs_own(p);
	fi->fh = fd;
	return 0;
}

static int
lfs_read(const char *path, char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	ssize_t		n = pread(fi->fh, buf, size, off);

	if (read_delay_us > 0)
		lfs_sleep_us(read_delay_us);
	return n < 0 ? -errno : (int) n;
}

static int
lfs_write(const char *path, const char *buf, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	ssize_t		n = pwrite(fi->fh, buf, size, off);

	return n < 0 ? -errno : (int) n;
}

static int
lfs_release(const char *path, struct fuse_file_info *fi)
{
	close(fi->fh);
	return 0;
}

static int
lfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int			rc = datasync ? fdatasync(fi->fh) : fsync(fi->fh);

	if (rc != 0)
		return -errno;
	lfs_delay();
	return 0;
}

static int
lfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	int			fd;
	BACKING(p, path);

	fd = open(p, O_RDONLY);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
	{
		int			save = errno;

		close(fd);
		return -save;
	}
	close(fd);
	lfs_delay();
	return 0;
}

static int
lfs_rename(const char *from, const char *to, unsigned int flags)
{
	BACKING(f, from);
	BACKING(t, to);

	if (flags != 0)
		return -EINVAL;
	return rename(f, t) == 0 ? 0 : -errno;
}

static int
lfs_unlink(const char *path)
{
	BACKING(p, path);
	return unlink(p) == 0 ? 0 : -errno;
}

static int
lfs_mkdir(const char *path, mode_t mode)
{
	BACKING(p, path);
	if (mkdir(p, mode) != 0)
		return -errno;
	lfs_own(p);
	return 0;
}

static int
lfs_rmdir(const char *path)
{
	BACKING(p, path);
	return rmdir(p) == 0 ? 0 : -errno;
}

static int
lfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (fi != NULL)
		return ftruncate(fi->fh, size) == 0 ? 0 : -errno;
	{
		BACKING(p, path);
		return truncate(p, size) == 0 ? 0 : -errno;
	}
}

static int
lfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	BACKING(p, path);
	return chmod(p, mode) == 0 ? 0 : -errno;
}

static int
lfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	BACKING(p, path);
	return lchown(p, uid, gid) == 0 ? 0 : -errno;
}

static int
lfs_utimens(const char *path, const struct timespec tv[2],
			struct fuse_file_info *fi)
{
	BACKING(p, path);
	return utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int
lfs_access(const char *path, int mask)
{
	BACKING(p, path);
	return access(p, mask) == 0 ? 0 : -errno;
}

static const struct fuse_operations lfs_ops = {
	.getattr = lfs_getattr,
	.readdir = lfs_readdir,
	.open = lfs_open,
	.create = lfs_create,
	.read = lfs_read,
	.write = lfs_write,
	.release = lfs_release,
	.fsync = lfs_fsync,
	.fsyncdir = lfs_fsyncdir,
	.rename = lfs_rename,
	.unlink = lfs_unlink,
	.mkdir = lfs_mkdir,
	.rmdir = lfs_rmdir,
	.truncate = lfs_truncate,
	.chmod = lfs_chmod,
	.chown = lfs_chown,
	.utimens = lfs_utimens,
	.access = lfs_access,
};

int
main(int argc, char **argv)
{
	const char *env = getenv("LATENCYFS_DELAY_MS");

	if (argc < 3)
	{
		fprintf(stderr, "usage: %s BACKING_DIR MOUNT_POINT [FUSE options]\n",
				argv[0]);
		return 2;
	}
	backing = realpath(argv[1], NULL);
	if (backing == NULL)
	{
		perror(argv[1]);
		return 2;
	}
	if (env != NULL)
		delay_ms = atol(env);
	if ((env = getenv("LATENCYFS_OPEN_DELAY_MS")) != NULL)
		open_delay_ms = atol(env);
	if ((env = getenv("LATENCYFS_READ_DELAY_US")) != NULL)
		read_delay_us = atol(env);
	/* FUSE sees: program MOUNT_POINT [options] */
	argv[1] = argv[0];
	return fuse_main(argc - 1, argv + 1, &lfs_ops, NULL);
}

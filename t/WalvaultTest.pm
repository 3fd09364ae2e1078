# Helpers shared by pg_walvault's TAP tests.
#
# A node here is a PostgreSQL::Test::Cluster with 1 MB WAL segments (so that
# a backlog of dozens of segments is quick to make and to copy), archiving
# through pg_walvault into <basedir>/archive.
package WalvaultTest;

use strict;
use warnings;

use Exporter 'import';
use File::Compare;
use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(walvault_node make_segments snapshot_ready
  check_archived wait_all_archived ready_files archive_files
  set_archive_directory wait_event_name archive_one_failure wait_for_pool
  touch held_pid);

# walvault_node(name, hold => 1, preload => 0, archive_dir => path, conf => text,
#               initdb => [options])
#
# hold: start with pg_walvault.archive_directory empty, so that the server
# keeps WAL ready without archiving it (set_archive_directory releases it).
# initdb: more options for initdb (an encoding, say).
sub walvault_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(
		allows_streaming => 1,
		extra => [ '--wal-segsize=1', @{ $opt{initdb} // [] } ]);

	my $archive = $opt{archive_dir} // $node->basedir . '/archive';
	make_path($archive) unless $opt{no_archive_dir};
	$node->{walvault_archive} = $archive;

	my $preload = (!defined $opt{preload} || $opt{preload})
	  ? "shared_preload_libraries = 'pg_walvault'" : '';
	my $dir = $opt{hold} ? '' : $archive;
	$node->append_conf(
		'postgresql.conf', qq{
$preload
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_directory = '$dir'
log_line_prefix = '%m [%p] %b '
log_statement = none
max_wal_size = 64MB
min_wal_size = 8MB
wal_keep_size = 0
} . ($opt{conf} // ''));
	return $node;
}

sub set_archive_directory
{
	my ($node, $dir) = @_;
	$node->append_conf('postgresql.conf',
		"pg_walvault.archive_directory = '$dir'");
	$node->reload;
}

# Make n more WAL segments ready for archiving.
sub make_segments
{
	my ($node, $n) = @_;
	$node->safe_psql('postgres',
		'CREATE TABLE IF NOT EXISTS walvault_filler (i int, t text)');
	for my $i (1 .. $n)
	{
		$node->safe_psql('postgres',
			"INSERT INTO walvault_filler SELECT g, md5(g::text) FROM generate_series(1, 100) g; SELECT pg_switch_wal()");
	}
	return;
}

# Names of the files the server has marked ready, sorted.
sub ready_files
{
	my ($node) = @_;
	my $status = $node->data_dir . '/pg_wal/archive_status';
	opendir(my $dh, $status) or die "opendir $status: $!";
	my @ready = sort map { s/\.ready$//r } grep { /\.ready$/ } readdir($dh);
	closedir $dh;
	return @ready;
}

# Names in the archive directory, sorted, but for its marker.
sub archive_files
{
	my ($dir) = @_;
	opendir(my $dh, $dir) or die "opendir $dir: $!";
	my @files = sort grep { !/^\.\.?$/ && $_ ne 'pg_walvault.archive' }
	  readdir($dh);
	closedir $dh;
	return @files;
}

# Copy every ready file out of pg_wal while the server still keeps it;
# returns the directory and the names.
sub snapshot_ready
{
	my ($node) = @_;
	my $snap = $node->basedir . '/snapshot';
	make_path($snap);
	my @ready = ready_files($node);
	for my $f (@ready)
	{
		copy($node->data_dir . "/pg_wal/$f", "$snap/$f")
		  or die "copy $f: $!";
	}
	return ($snap, @ready);
}

# Every name is in the archive, byte-identical to the snapshot, mode 0600.
sub check_archived
{
	my ($archive, $snap, @names) = @_;
	my @bad;
	for my $f (@names)
	{
		my $a = "$archive/$f";
		if (!-f $a) { push @bad, "$f missing"; next; }
		push @bad, "$f differs" if compare($a, "$snap/$f") != 0;
		my $mode = (stat $a)[2] & 07777;
		push @bad, sprintf("%s has mode %o", $f, $mode) if $mode != 0600;
	}
	is(join(', ', @bad), '',
		scalar(@names) . ' files archived byte-identical with mode 0600');
	my @temp = grep { /^\./ } archive_files($archive);
	is(join(', ', @temp), '', 'no temporary file left in the archive');
	return;
}

# The wait event pg_stat_activity shows while one of our processes waits:
# from PostgreSQL 17 on our own name, before it the server's event that
# stands for it.
sub wait_event_name
{
	my ($node, $ours, $before_17) = @_;
	return $node->pg_version >= 17 ? $ours : $before_17;
}

# Wait until n archive workers are running and idle.
sub wait_for_pool
{
	my ($node, $n) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'"
	) or die 'pool did not start';
	return;
}

# Create path (holding content, if given): how tests arm and release holds.
sub touch
{
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "create $path: $!";
	print $fh $content if defined $content;
	close $fh;
	return;
}

# The pid of the leader of a group fsync held by the test hook of
# target_directory.c (PG_WALVAULT_TEST_DIRSYNC_HOLD=hold), once it holds
# it; its HOLD/held.PID is removed, so that the next hold can be seen.
sub held_pid
{
	my ($node, $hold) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_ls_dir('$hold') f WHERE f LIKE 'held.%'")
	  or die 'no fsync of the archive directory was held';
	opendir(my $dh, $hold) or die "opendir $hold: $!";
	my ($held) = grep { /^held\.\d+$/ } readdir($dh);
	closedir $dh;
	unlink "$hold/$held" or die "unlink $held: $!";
	return $held =~ s/^held\.//r;
}

sub wait_all_archived
{
	my ($node) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
	) or die 'timed out waiting for the backlog to be archived';
	return;
}

# archive_one_failure(node): one file fails to archive, counted, then the
# archive directory is writable again (the server retries it and goes on).
# The archive directory is made read-only meanwhile, which needs a non-root
# user, as the tests run.
sub archive_one_failure
{
	my ($node) = @_;
	my $archive = $node->{walvault_archive};
	chmod 0500, $archive or die "chmod $archive: $!";
	make_segments($node, 1);
	$node->poll_query_until('postgres', 'SELECT failed_count > 0 FROM pg_stat_walvault')
	  or die 'no failure';
	chmod 0700, $archive or die "chmod $archive: $!";
	$node->reload;
	return;
}

1;

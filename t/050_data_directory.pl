# An archive directory inside the data directory is refused, whatever path
# leads there.  pg_wal itself would archive nothing at all: every file would
# be found "already in the archive" as itself, reported archived, and then
# removed by the server.  A directory elsewhere in the data directory would
# be copied by base backups and lost with the cluster.
# - pg_wal, a symbolic link to pg_wal, a subdirectory of pg_wal and one of
#   the data directory (also reached through a symbolic link): a WARNING at reload
#   (and at start), every file fails with the reason, counted, WAL kept,
#   nothing reported archived.
# - A directory outside: the kept WAL is archived.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('datadir', hold => 1,
	conf => "pg_walvault.max_workers = 2\npg_walvault.min_workers = 2\n");
my $archive = $node->{walvault_archive};
my $data = $node->data_dir;
my $base = $node->basedir;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

make_path("$data/archive_inside", "$data/pg_wal/archive");
symlink("$data/pg_wal", "$base/wal_link") or die "symlink: $!";
symlink("$data/archive_inside", "$base/inside_link") or die "symlink: $!";

my @cases = (
	[ 'pg_wal', "$data/pg_wal", qr/is the server's WAL directory/ ],
	[ 'a symbolic link to pg_wal', "$base/wal_link", qr/is the server's WAL directory/ ],
	[ 'a subdirectory of pg_wal', "$data/pg_wal/archive",
		qr/is inside the server's WAL directory/ ],
	[ 'a subdirectory of the data directory', "$data/archive_inside",
		qr/is inside the data directory/ ],
	[ 'a symbolic link to a subdirectory of the data directory', "$base/inside_link",
		qr/is inside the data directory/ ]);

my ($snap, @ready);
for my $case (@cases)
{
	my ($what, $dir, $reason) = @$case;
	my $offset = -s $node->logfile;
	set_archive_directory($node, $dir);
	$node->wait_for_log(
		qr/WARNING:  pg_walvault.archive_directory "\Q$dir\E" $reason/, $offset);
	ok(1, "$what: a warning at reload");

	my $failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
	make_segments($node, 1);
	# either way, settled: a failure, or a file reported archived
	$node->poll_query_until('postgres',
		"SELECT failed_count > $failed OR archived_count > 0 FROM pg_stat_walvault")
	  or die 'neither a failure nor a success';
	like($node->safe_psql('postgres', 'SELECT last_error FROM pg_stat_walvault'),
		qr/^pg_walvault.archive_directory "\Q$dir\E" $reason/,
		"$what: the error says why");
	is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
		'0', "$what: nothing is reported archived");
	($snap, @ready) = snapshot_ready($node);
	cmp_ok(scalar(@ready), '>=', 1, "$what: WAL is kept");
}
ok($node->log_contains(qr/ERROR:  pg_walvault.archive_directory "\Q$data\/pg_wal\E" is the server's WAL directory/),
	'the failure is logged');
is(join(', ', archive_files("$data/archive_inside"), archive_files("$data/pg_wal/archive")),
	'', 'nothing was written inside the data directory');
is(join(', ', grep { -e "$_/pg_walvault.archive" }
		  ("$data/pg_wal", "$data/pg_wal/archive", "$data/archive_inside")),
	'', 'nor an archive marker');

# at start too
my $offset = -s $node->logfile;
$node->restart;
$node->wait_for_log(
	qr/WARNING:  pg_walvault.archive_directory "\Q$base\/inside_link\E" is inside the data directory/,
	$offset);
ok(1, 'a warning at start');

# a directory outside the data directory: the kept WAL goes there
set_archive_directory($node, $archive);
wait_all_archived($node);
check_archived($archive, $snap, @ready);

$node->stop;
done_testing();

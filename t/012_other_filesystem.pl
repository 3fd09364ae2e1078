# An archive directory on another file system than pg_wal (here tmpfs, as a
# separately mounted archive disk would be): the kernel cannot copy between
# them (copy_file_range fails with EXDEV), so the copy goes through our
# buffer, and every segment must still arrive byte-identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $shm = '/dev/shm';
plan skip_all => "$shm is not available" unless -d $shm && -w $shm;
my $archive = tempdir('walvault_archive_XXXXXX', DIR => $shm, CLEANUP => 1);

my $node = walvault_node('otherfs', hold => 1, archive_dir => $archive,
	conf => "pg_walvault.max_workers = 2\nlog_min_messages = debug1\n");
plan skip_all => "$shm is on the same file system as the data directory"
  if (stat $archive)[0] == (stat $node->basedir)[0];

$node->start;
make_segments($node, 6);
my ($snap, @ready) = snapshot_ready($node);
set_archive_directory($node, $archive);
wait_all_archived($node);
check_archived($archive, $snap, @ready);
ok( $node->log_contains(
		qr/copy_file_range from ".*" to "\Q$archive\E\/.*" is not possible \(Invalid cross-device link\), copying through a buffer/),
	'the copy went through the buffer');

$node->stop;
done_testing();

# kill -9 of an archive worker during a drain: the postmaster restarts the
# cluster, and in the end every segment is in the archive, intact, with no
# temporary file left behind.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('crash', hold => 1,
	conf => "restart_after_crash = on\npg_walvault.max_workers = 4\npg_walvault.min_workers = 4\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
$node->poll_query_until('postgres',
	"SELECT count(*) = 4 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state <> 'starting'")
  or die 'pool did not start';
make_segments($node, 100);
my ($snap, @ready) = snapshot_ready($node);

my $victim = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker' ORDER BY worker_id LIMIT 1");
set_archive_directory($node, $node->{walvault_archive});
# the drain has begun: some worker took a file
$node->poll_query_until('postgres',
	"SELECT archived_count > 0 OR in_progress_count > 0 FROM pg_stat_walvault")
  or die 'drain did not start';
my $before = $node->safe_psql('postgres',
	'SELECT archived_count FROM pg_stat_walvault');
kill 'KILL', $victim or die "could not kill $victim: $!";

$node->wait_for_log(qr/all server processes terminated; reinitializing/);
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart';
ok(1, "worker $victim killed after $before files, cluster restarted");

wait_all_archived($node);
check_archived($node->{walvault_archive}, $snap, @ready);

# a crash throws the counters away with shared memory
cmp_ok($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'<=', scalar(@ready), 'counters started again after the crash');
$node->stop;
done_testing();

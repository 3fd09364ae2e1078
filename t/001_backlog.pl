# A backlog of ready WAL segments is archived in parallel, every segment
# byte-identical, by a pool that grows to max_workers; our processes show in
# the views and in pg_stat_activity.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('backlog', hold => 1,
	conf => "pg_walvault.max_workers = 4\npg_walvault.min_workers = 1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# the coordinator and the minimum pool come up by themselves
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker'")
  or die 'no archive worker started';
ok( $node->poll_query_until('postgres',
		"SELECT string_agg(backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity WHERE backend_type LIKE 'pg_walvault%'",
		'pg_walvault archive worker,pg_walvault collector,pg_walvault coordinator'),
	'coordinator, collector and worker show in pg_stat_activity');

# hold archiving (no directory yet) and build a backlog
make_segments($node, 60);
my ($snap, @ready) = snapshot_ready($node);
cmp_ok(scalar(@ready), '>=', 60, 'backlog of at least 60 ready segments');

set_archive_directory($node, $node->{walvault_archive});
wait_all_archived($node);
check_archived($node->{walvault_archive}, $snap, @ready);

my $archived = $node->safe_psql('postgres',
	'SELECT archived_count FROM pg_stat_walvault');
cmp_ok($archived, '>=', scalar(@ready), 'archived_count counts the backlog');
is($node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	'0', 'no failure');
is( $node->safe_psql('postgres',
		'SELECT last_archived_wal FROM pg_stat_walvault'),
	$ready[-1], 'last_archived_wal is the newest segment');

# the queue was deeper than one idle worker: the pool grew
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker'"),
	'>', 1, 'the pool grew beyond one worker');
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND files_archived > 0"),
	'>=', 1, 'workers archived files');
is( $node->safe_psql('postgres',
		"SELECT sum(files_archived) FROM pg_stat_walvault_workers"),
	$archived, 'per-process counts add up to archived_count');

# the server's own view agrees: nothing failed, everything done
is( $node->safe_psql('postgres',
		'SELECT failed_count, last_archived_wal FROM pg_stat_archiver'),
	"0|$ready[-1]", 'pg_stat_archiver agrees');

$node->stop;
done_testing();

# The pool follows min_workers, max_workers and worker_idle_timeout on
# reload; a pool of 0 still archives (the archiver does it); a terminated
# worker is replaced; a shortage of background worker slots is reported
# once and archiving goes on.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $count_workers =
  "SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker'";

sub set_pool
{
	my ($node, $conf, $expect, $what) = @_;
	$node->append_conf('postgresql.conf', $conf);
	$node->reload;
	ok($node->poll_query_until('postgres', $count_workers, $expect), $what);
}

my $node = walvault_node('pool',
	conf => "pg_walvault.min_workers = 2\npg_walvault.max_workers = 4\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
ok($node->poll_query_until('postgres', $count_workers, '2'),
	'min_workers workers start with the server');

set_pool($node, "pg_walvault.max_workers = 1", '1',
	'lowering max_workers shrinks the pool (min_workers is capped)');
set_pool($node, "pg_walvault.max_workers = 3\npg_walvault.min_workers = 3",
	'3', 'raising min_workers grows the pool');

# a worker that goes away is replaced
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker' LIMIT 1");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 3 AND bool_and(pid <> $pid) FROM pg_stat_walvault_workers WHERE role = 'archive worker'"),
	'a terminated worker is replaced');

set_pool($node,
	"pg_walvault.min_workers = 0\npg_walvault.worker_idle_timeout = '200ms'",
	'0', 'idle workers above min_workers leave after worker_idle_timeout');

# work brings workers back: the files are archived by workers, not by the
# archiver (which takes a file over only when no worker comes)
my $by_archiver = sub {
	$node->safe_psql('postgres',
		"SELECT files_archived FROM pg_stat_walvault_workers WHERE role = 'archiver'");
};
my ($total0, $archiver0) = ($node->safe_psql('postgres',
		'SELECT archived_count FROM pg_stat_walvault'), $by_archiver->());
make_segments($node, 10);
wait_all_archived($node);
my $total = $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault') - $total0;
my $archiver = $by_archiver->() - $archiver0;
cmp_ok($total, '>=', 10, "the 10 files were archived ($total in all)");
cmp_ok($total - $archiver, '>', 0,
	"workers came back for the work (they archived " . ($total - $archiver) . ")");

# a pool of 0: the archiver archives by itself
set_pool($node, "pg_walvault.max_workers = 0", '0', 'max_workers = 0 stops every worker');
my $before = $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault');
make_segments($node, 5);
wait_all_archived($node);
cmp_ok($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'>=', $before + 5, 'a pool of 0 still archives');
is( $node->safe_psql('postgres',
		"SELECT files_archived > 0 FROM pg_stat_walvault_workers WHERE role = 'archiver'"),
	't', 'the archiver archived the files itself');
ok( $node->log_contains(
		qr/no archive worker is available, the archiver archives files itself/),
	'the fallback is logged');
$node->stop;

# no free background worker slot: said once, and archiving goes on
my $small = walvault_node('small',
	conf => "max_worker_processes = 2\npg_walvault.min_workers = 3\npg_walvault.max_workers = 3\n");
$small->start;
$small->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
$small->wait_for_log(qr/could not start a pg_walvault background worker: no background worker slot is free/);
make_segments($small, 5);
wait_all_archived($small);
my @warnings = (slurp_file($small->logfile) =~
	  /could not start a pg_walvault background worker/g);
is(scalar(@warnings), 1, 'the shortage is reported once');
ok($small->log_contains(qr/HINT:  Raise max_worker_processes \(currently 2\)/),
	'with a hint naming max_worker_processes');
$small->stop;
done_testing();

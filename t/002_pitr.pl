# Point-in-time recovery from a base backup with pg_walvault_restore as
# restore_command reaches the same data as the primary.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('primary');
$node->start;
$node->safe_psql('postgres',
	'CREATE EXTENSION pg_walvault; CREATE TABLE t (i int, t text)');
$node->backup('base');

# changes after the backup, spread over several segments
$node->safe_psql('postgres',
	"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
make_segments($node, 5);
$node->safe_psql('postgres',
	"UPDATE t SET t = 'updated' WHERE i % 7 = 0; DELETE FROM t WHERE i % 11 = 0");
my $expected = $node->safe_psql('postgres',
	"SELECT count(*), sum(i), md5(string_agg(t, ',' ORDER BY i)) FROM t");
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
wait_all_archived($node);

my $archive = $node->{walvault_archive};
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'base');
$restored->append_conf(
	'postgresql.conf', qq{
archive_mode = off
restore_command = 'pg_walvault_restore -d "$archive" %f %p'
});
open(my $fh, '>', $restored->data_dir . '/recovery.signal') or die $!;
close $fh;
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'recovery did not finish';

is( $restored->safe_psql('postgres',
		"SELECT count(*), sum(i), md5(string_agg(t, ',' ORDER BY i)) FROM t"),
	$expected,
	'the restored cluster has the same data');
ok($restored->log_contains(qr/restored log file "[0-9A-F]{24}" from archive/),
	'WAL was restored from the archive');

$restored->stop;
$node->stop;
done_testing();

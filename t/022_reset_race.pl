# Resets do not race the collector: with a sample every 10 ms and
# pg_stat_walvault_reset('counters') every 50 ms during a drain,
# the history still adds up to exactly what was archived (no sample holds a
# total from before a reset, none counts a file twice), and the counters a
# view shows always belong together.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('reset', hold => 1,
	conf => "pg_walvault.stats_interval = '10ms'\n"
	  . "pg_walvault.history_size = 100000\n"
	  . "pg_walvault.max_workers = 4\npg_walvault.min_workers = 4\n");
my $archive = $node->{walvault_archive};
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
make_segments($node, 150);
my @ready = ready_files($node);

# Reset every 50 ms until nothing is left to archive.  Each time, the view
# is read once: its counters come from one copy, so bytes cannot be there
# without their files.
$node->safe_psql(
	'postgres', q{
CREATE TABLE torn (archived_count bigint, archived_bytes bigint);
CREATE FUNCTION reset_during_drain() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	n int := 0;
BEGIN
	LOOP
		PERFORM pg_stat_walvault_reset('counters');
		n := n + 1;
		INSERT INTO torn
			SELECT archived_count, archived_bytes FROM pg_stat_walvault
			WHERE archived_bytes <> archived_count * 1024 * 1024;
		EXIT WHEN NOT EXISTS (SELECT FROM pg_ls_archive_statusdir()
							  WHERE name LIKE '%.ready');
		PERFORM pg_sleep(0.05);
	END LOOP;
	RETURN n;
END $$;
});
$node->safe_psql('postgres', 'SELECT pg_stat_walvault_reset()');
# a command that takes 50 ms a file makes the drain last a few seconds
$node->append_conf('postgresql.conf',
	"pg_walvault.archive_command = 'cp %p $archive/%f && sleep 0.05'");
$node->reload;
my $resets = $node->safe_psql('postgres', 'SELECT reset_during_drain()');
cmp_ok($resets, '>=', 5, "$resets resets during the drain");
my $end = $node->safe_psql('postgres', 'SELECT now()');

# every file was counted before its .ready became .done: a sample after
# $end holds the last of them
$node->poll_query_until('postgres',
	"SELECT max(sample_time) > '$end' FROM pg_stat_walvault_history")
  or die 'no sample after the drain';

my @files = grep { /^[0-9A-F]{24}$/ } archive_files($archive);
my $bytes = 0;
$bytes += -s "$archive/$_" for @files;
cmp_ok(scalar(@files), '>=', scalar(@ready), scalar(@files) . ' files archived');
my ($sum_count, $sum_bytes, $max_count, $max_bytes) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT sum(archived_count), sum(archived_bytes), max(archived_count), max(archived_bytes) FROM pg_stat_walvault_history'
  );
cmp_ok($max_count, '<=', scalar(@files),
	'no sample holds more files than were archived');
is("$sum_count|$sum_bytes", scalar(@files) . "|$bytes",
	'the samples add up to exactly the files and bytes archived');
is($node->safe_psql('postgres', 'SELECT count(*) FROM torn'),
	'0', 'the view never showed bytes without their files');
$node->stop;
done_testing();

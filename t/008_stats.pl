# The stats collector: history at the interval under a pgbench load whose
# numbers agree with the archive, rates, latency, lag, ring resize on reload,
# reset by target, a collector terminated and restarted with its history
# intact, counters and history surviving a clean restart but not a crash.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('stats',
	conf => "pg_walvault.stats_interval = '500ms'\npg_walvault.history_size = 1000\nrestart_after_crash = on\n");
my $archive = $node->{walvault_archive};
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'collector'"),
	'the collector runs');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_walvault collector'"),
	'1', 'the collector shows in pg_stat_activity');

# a pgbench load
$node->command_ok([ 'pgbench', '-i', '-s', '2', '-q', 'postgres' ],
	'pgbench initialized');
$node->command_ok([ 'pgbench', '-T', '4', '-c', '2', 'postgres' ],
	'pgbench ran');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
wait_all_archived($node);

# rates while archiving: the 1-minute rate includes the load
cmp_ok($node->safe_psql('postgres',
		'SELECT archived_bytes_per_sec_1m FROM pg_stat_walvault'),
	'>', 0, 'archived_bytes_per_sec_1m is non-zero after archiving');
is( $node->safe_psql('postgres',
		'SELECT archive_latency_p50_ms > 0 AND archive_latency_p50_ms <= archive_latency_p99_ms FROM pg_stat_walvault'),
	't', 'latency percentiles are set and ordered');

# wait for a sample taken after the last file was archived, then compare
# the history with the archive directory
$node->poll_query_until('postgres',
	"SELECT max(sample_time) > (SELECT last_archived_time FROM pg_stat_walvault) FROM pg_stat_walvault_history")
  or die 'no sample after the last archived file';
my @files = grep { /^[0-9A-F]{24}$/ } archive_files($archive);
my $bytes = 0;
$bytes += -s "$archive/$_" for @files;
is( $node->safe_psql('postgres',
		'SELECT sum(archived_count), sum(archived_bytes) FROM pg_stat_walvault_history'),
	scalar(@files) . "|$bytes",
	'the history adds up to what is in the archive directory');
is( $node->safe_psql('postgres',
		'SELECT sum(archived_count) FROM pg_stat_walvault_history'),
	$node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'and to archived_count');
cmp_ok($node->safe_psql('postgres', 'SELECT sum(wal_bytes) FROM pg_stat_walvault_history'),
	'>', 0, 'WAL generation is sampled');
is( $node->safe_psql('postgres',
		'SELECT sum(server_archived_count), sum(server_failed_count) FROM pg_stat_walvault_history'),
	$node->safe_psql('postgres', 'SELECT archived_count, failed_count FROM pg_stat_archiver'),
	"the server's archiver statistics are followed");
is( $node->safe_psql('postgres',
		'SELECT sum(wal_records) > 0 AND sum(wal_fpi) > 0 FROM pg_stat_walvault_history'),
	't', 'pg_stat_wal is followed');
$node->safe_psql('postgres', 'CHECKPOINT');
ok( $node->poll_query_until('postgres',
		'SELECT sum(checkpoints) >= 1 FROM pg_stat_walvault_history'),
	'checkpoints are followed');
is( $node->safe_psql('postgres',
		'SELECT count(*) > 0 FROM pg_stat_walvault_history WHERE archived_bytes_per_sec > 0 AND wal_bytes_per_sec > 0'),
	't', 'rates are non-zero while archiving');

# the interval is kept
my $spacing = $node->safe_psql('postgres',
	"SELECT extract(epoch FROM (max(sample_time) - min(sample_time))) / (count(*) - 1) FROM pg_stat_walvault_history");
ok($spacing > 0.3 && $spacing < 1.5, "samples come every 500ms (mean $spacing s)");

# idle: the newest samples show no archiving, lag within the current segment
ok( $node->poll_query_until('postgres',
		"SELECT bool_and(archived_bytes_per_sec = 0 AND archived_count = 0) FROM (SELECT * FROM pg_stat_walvault_history ORDER BY sample_time DESC LIMIT 2) s"),
	'rates are zero when idle');
cmp_ok($node->safe_psql('postgres', 'SELECT archive_lag_bytes FROM pg_stat_walvault'),
	'<', 1024 * 1024, 'idle lag is within the current segment');

# a collector terminated with SIGTERM comes back, history intact
my ($first, $count) = split /\|/, $node->safe_psql('postgres',
	'SELECT min(sample_time), count(*) FROM pg_stat_walvault_history');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'collector'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'collector' AND pid <> $pid AND restarts = 1"),
	'a terminated collector is restarted and counted');
ok( $node->poll_query_until('postgres',
		"SELECT min(sample_time) = '$first' AND count(*) > $count FROM pg_stat_walvault_history"),
	'the history survived and grows again');

# resize on reload keeps the newest samples
my $newest = $node->safe_psql('postgres', 'SELECT max(sample_time) FROM pg_stat_walvault_history');
$node->append_conf('postgresql.conf', 'pg_walvault.history_size = 10');
$node->reload;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) <= 10 AND max(sample_time) >= '$newest' AND min(sample_time) > '$first' FROM pg_stat_walvault_history"),
	'a smaller ring keeps the newest samples');
$node->append_conf('postgresql.conf', 'pg_walvault.history_size = 1000');
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT count(*) > 12 FROM pg_stat_walvault_history'),
	'a larger ring fills beyond the old size');

# reset by target
my $archived = $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault');
$node->safe_psql('postgres', "SELECT pg_stat_walvault_reset('history')");
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM pg_stat_walvault_history'),
	'<=', 1, "reset('history') empties the history");
is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	$archived, "reset('history') keeps the counters");
$node->poll_query_until('postgres', 'SELECT count(*) >= 2 FROM pg_stat_walvault_history');
my $reset_before = $node->safe_psql('postgres', 'SELECT stats_reset FROM pg_stat_walvault');
$node->safe_psql('postgres', "SELECT pg_stat_walvault_reset('counters')");
is( $node->safe_psql('postgres',
		"SELECT archived_count, failed_count, stats_reset > '$reset_before' FROM pg_stat_walvault"),
	'0|0|t', "reset('counters') zeroes the counters and moves stats_reset");
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM pg_stat_walvault_history'),
	'>=', 2, "reset('counters') keeps the history");

# a non-superuser without a grant cannot reset
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT pg_stat_walvault_reset()',
	extra_params => [ '-U', 'plain' ]);
like($err, qr/permission denied for function pg_stat_walvault_reset/,
	'a role without a grant cannot reset');

# counters and history survive a clean restart
make_segments($node, 3);
wait_all_archived($node);
$node->poll_query_until('postgres',
	"SELECT max(sample_time) > (SELECT last_archived_time FROM pg_stat_walvault) FROM pg_stat_walvault_history");
my $before = $node->safe_psql('postgres',
	'SELECT archived_count, stats_reset FROM pg_stat_walvault');
my ($hfirst, $hcount) = split /\|/, $node->safe_psql('postgres',
	'SELECT min(sample_time), count(*) FROM pg_stat_walvault_history');
$node->restart;
my ($count_after, $reset_after) = split /\|/, $node->safe_psql('postgres',
	'SELECT archived_count, stats_reset FROM pg_stat_walvault');
my ($count_before, $reset_b) = split /\|/, $before;
# the segment switched at shutdown is archived by the archiver and counted
cmp_ok($count_after, '>=', $count_before, 'archived_count survives a clean restart');
is($reset_after, $reset_b, 'stats_reset survives a clean restart');
ok( $node->poll_query_until('postgres',
		"SELECT min(sample_time) = '$hfirst' AND count(*) >= $hcount FROM pg_stat_walvault_history"),
	'the history survives a clean restart');
ok(!-e $node->data_dir . '/pg_stat/pg_walvault.stat',
	'the statistics file is removed once loaded');
$node->poll_query_until('postgres',
	"SELECT max(sample_time) > (SELECT last_archived_time FROM pg_stat_walvault) FROM pg_stat_walvault_history");
is( $node->safe_psql('postgres',
		'SELECT sum(archived_count) FROM pg_stat_walvault_history'),
	$node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'history and counters still agree after the restart');

# but not a crash
my $backend = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'coordinator'");
kill 'KILL', $backend or die $!;
$node->wait_for_log(qr/all server processes terminated; reinitializing/);
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart';
ok( $node->poll_query_until('postgres',
		"SELECT archived_count = 0 AND stats_reset > '$reset_b' FROM pg_stat_walvault"),
	'a crash starts the counters from zero');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) >= 1 AND min(sample_time) > '$hfirst' FROM pg_stat_walvault_history"),
	'and the history from nothing');

# a damaged statistics file is ignored, not trusted
make_segments($node, 1);
wait_all_archived($node);
$node->stop;
my $statfile = $node->data_dir . '/pg_stat/pg_walvault.stat';
ok(-s $statfile, 'a clean shutdown writes the statistics file');
open(my $fh, '+<', $statfile) or die $!;
seek($fh, 20, 0);
print $fh 'garbage';
close $fh;
$node->start;
$node->wait_for_log(qr/ignoring invalid pg_walvault statistics file/);
ok(1, 'a corrupt statistics file is reported');
is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'0', 'and its counters are not loaded');

# save_stats = off: nothing is kept
make_segments($node, 1);
wait_all_archived($node);
$node->append_conf('postgresql.conf', 'pg_walvault.save_stats = off');
$node->restart;
is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'0', 'with save_stats off counters start from zero');
ok(!-e $statfile && !-e $node->data_dir . '/pg_stat/pg_walvault_history.stat',
	'and no statistics file is left');

$node->stop;
done_testing();

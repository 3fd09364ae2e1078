# Statistics files: kept across a clean shutdown only (an immediate shutdown
# counts as a crash, as for the server's own statistics), and never able to
# stop the server: a truncated file, a huge sparse one, one of another
# format version are each removed and reported with one WARNING, and the
# server starts with statistics from zero.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('files',
	conf => "pg_walvault.stats_interval = '100ms'\n");
my $statfile = $node->data_dir . '/pg_stat/pg_walvault.stat';
my $histfile = $node->data_dir . '/pg_stat/pg_walvault_history.stat';
my $warning = qr/WARNING:  ignoring invalid pg_walvault statistics file/;

$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# archive some files and wait for a sample that counts them
sub archive_some
{
	make_segments($node, 2);
	wait_all_archived($node);
	$node->poll_query_until('postgres',
		"SELECT max(sample_time) > (SELECT last_archived_time FROM pg_stat_walvault) FROM pg_stat_walvault_history"
	) or die 'no sample after the last archived file';
	return;
}

# how many times the log has said re since offset
sub count_in_log
{
	my ($re, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my $n = () = $log =~ /$re/g;
	return $n;
}

# --- an immediate shutdown is a crash for our statistics too
archive_some();
my ($count, $reset) = split /\|/,
  $node->safe_psql('postgres', 'SELECT archived_count, stats_reset FROM pg_stat_walvault');
cmp_ok($count, '>', 0, "$count files archived before the immediate shutdown");
my $offset = -s $node->logfile;
$node->stop('immediate');
ok(!-e $statfile, 'an immediate shutdown writes no statistics file');
like(slurp_file($node->logfile, $offset),
	qr/LOG:  pg_walvault statistics not saved: the server did not shut down cleanly/,
	'and says so');
$node->start;
is( $node->safe_psql('postgres',
		"SELECT archived_count < $count AND stats_reset > '$reset' FROM pg_stat_walvault"),
	't', 'after an immediate shutdown the counters start from zero');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) > 0 AND min(sample_time) > pg_postmaster_start_time() FROM pg_stat_walvault_history"
	),
	'and the history from nothing');

# --- a clean shutdown keeps every one of them (the baseline for what
# follows); a failure first, so that there is one to keep
my $archive = $node->{walvault_archive};
archive_one_failure($node);
archive_some();
my $all = 'SELECT archived_count, archived_bytes, stored_bytes, failed_count,'
  . ' last_archived_wal, last_archived_time, last_failed_wal, last_failed_time,'
  . ' last_error, archive_latency_p50_ms, archive_latency_p99_ms, stats_reset'
  . ' FROM pg_stat_walvault';
my $before = $node->safe_psql('postgres', $all);
$node->stop;
ok(-s $statfile && -s $histfile, 'a clean shutdown writes both files');
$node->start;
my $after = $node->safe_psql('postgres', $all);
# the archiver may archive the segment switched at shutdown: compare what
# cannot change
my @b = split /\|/, $before;
my @a = split /\|/, $after;
is(join('|', @a[ 3, 6 .. 8, 11 ]), join('|', @b[ 3, 6 .. 8, 11 ]),
	'failures, the last failure and stats_reset survive a clean restart');
ok($a[0] >= $b[0] && $a[1] >= $b[1] && $a[2] >= $b[2] && $a[0] > 0,
	'and the counts of archived files and bytes');
is($a[9] ne '' && $a[10] ne '', 1, 'and the latency histogram');

# a reset zeroes every counter at once
$node->safe_psql('postgres', "SELECT pg_stat_walvault_reset('counters')");
is( $node->safe_psql('postgres',
		'SELECT archived_count, archived_bytes, stored_bytes, failed_count,'
		  . ' last_archived_wal IS NULL, last_failed_wal IS NULL, last_error IS NULL,'
		  . ' archive_latency_p50_ms IS NULL, archive_latency_p99_ms IS NULL'
		  . ' FROM pg_stat_walvault'),
	'0|0|0|0|t|t|t|t|t', 'a reset zeroes every counter');

# tamper(what, file): stop cleanly, damage file with what, start; the
# server must start, warn once about the file, remove it, and start the
# statistics of that file from zero
sub tamper
{
	my ($name, $file, $damage, $detail) = @_;
	archive_some();
	$node->stop;
	ok(-s $file, "$name: the file is there");
	$damage->($file);
	my $offset = -s $node->logfile;
	my $ret = $node->start(fail_ok => 1);
	ok($ret, "$name: the server starts");
	return unless $ret;
	# the postmaster reads the counters file before it accepts connections,
	# the collector the history file before its first sample
	$node->poll_query_until('postgres',
		"SELECT max(sample_time) > pg_postmaster_start_time() FROM pg_stat_walvault_history"
	) or die 'the collector takes no sample';
	my $log = slurp_file($node->logfile, $offset);
	like($log, qr/$warning.*\n.*DETAIL:  $detail/, "$name: one WARNING says why");
	is(count_in_log($warning, $offset), 1, "$name: only one");
	ok(!-e $file, "$name: the file is removed");
	return;
}

tamper(
	'truncated statistics file', $statfile,
	sub { truncate($_[0], (-s $_[0]) - 10) or die $! },
	qr/The file has \d+ bytes, \d+ were expected\./);
is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'0', 'truncated statistics file: counters from zero');

tamper(
	'huge sparse statistics file', $statfile,
	sub { truncate($_[0], 3 * 1024 * 1024 * 1024) or die $! },
	qr/The file has 3221225472 bytes, \d+ were expected\./);
is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'0', 'huge sparse statistics file: counters from zero');

tamper(
	'statistics file of another format version', $statfile,
	sub {
		open(my $fh, '+<', $_[0]) or die $!;
		binmode $fh;
		seek($fh, 4, 0);
		print $fh pack('L', 99);
		close $fh;
	},
	qr/The file is in format 99; this version of pg_walvault reads format \d+\./);
is($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'0', 'statistics file of another format: counters from zero');

tamper(
	'huge sparse history file', $histfile,
	sub { truncate($_[0], 3 * 1024 * 1024 * 1024) or die $! },
	qr/The file has 3221225472 bytes, \d+ were expected for \d+ samples\./);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) > 0 AND min(sample_time) > pg_postmaster_start_time() FROM pg_stat_walvault_history"
	),
	'huge sparse history file: the history starts empty, the collector samples');
cmp_ok($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'>', 0, 'and the counters file of the same shutdown is still loaded');

tamper(
	'truncated history file', $histfile,
	sub { truncate($_[0], (-s $_[0]) - 1) or die $! },
	qr/The file has \d+ bytes, \d+ were expected for \d+ samples\./);

# CRC-32C, as pg_crc32c computes it
sub crc32c
{
	my ($data) = @_;
	my @table;
	for my $i (0 .. 255)
	{
		my $c = $i;
		$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
		$table[$i] = $c;
	}
	my $crc = 0xFFFFFFFF;
	$crc = ($crc >> 8) ^ $table[ ($crc ^ $_) & 0xFF ] for unpack('C*', $data);
	return $crc ^ 0xFFFFFFFF;
}

# --- a counters file with a valid checksum is still not trusted with its
# strings: they end within their arrays, a name that is not a WAL file's is
# not shown
archive_one_failure($node);
archive_some();
my ($failed, $error) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT last_failed_wal, last_error FROM pg_stat_walvault');
$node->stop;
{
	open(my $fh, '<', $statfile) or die $!;
	binmode $fh;
	local $/;
	my $body = substr(<$fh>, 0, -4);
	close $fh;
	my $e = index($body, substr($error, 0, 40));
	my $f = index($body, "$failed\0");
	die "last_error or last_failed_wal not found in $statfile"
	  unless $e > 0 && $f > 0;
	substr($body, $e, 512) = 'A' x 512;    # all of last_error, no NUL
	substr($body, $f, 24) = 'X' x 24;      # not the name of a WAL file
	open($fh, '>', $statfile) or die $!;
	binmode $fh;
	print $fh $body, pack('V', crc32c($body));
	close $fh;
}
$node->start;
is( $node->safe_psql('postgres',
		"SELECT length(last_error), last_error = repeat('A', 511), coalesce(last_failed_wal, '') FROM pg_stat_walvault"
	),
	'511|t|',
	'strings loaded from the counters file end within their arrays; a bad name is dropped');

$node->stop;
done_testing();

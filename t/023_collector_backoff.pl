# A collector that cannot start is started again after a growing delay, not
# at fork speed, and the coordinator says once why, with a hint.  The
# failure is the one a DBA meets: pg_walvault.history_size = 1000000 needs
# over 100 MB of dynamic shared memory, more than there is room for.  The
# room is taken away with a file size limit on the postmaster (which
# PostgreSQL turns into "disk full" errors), inherited by the collector.
# Lowering history_size and reloading starts a collector at once.  The
# README states the size of a sample as the server does.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Time::Local qw(timegm);
use WalvaultTest;

my ($prlimit) = grep { -x } map { "$_/prlimit" } split /:/, $ENV{PATH};
plan skip_all => 'prlimit (util-linux) is not installed' unless $prlimit;

my $node = walvault_node('backoff',
	conf => "pg_walvault.stats_interval = '100ms'\n"
	  . "pg_walvault.history_size = 1000000\n");

# The server inherits a soft limit of 32 MB per file from this process,
# which takes its own limit back at once.
my $limit = 32 * 1024 * 1024;
system($prlimit, '--pid', $$, "--fsize=$limit:") == 0
  or die 'prlimit failed';
$node->start;
system($prlimit, '--pid', $$, '--fsize=unlimited:') == 0
  or die 'prlimit failed';
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# time, in seconds, of a log line with log_line_prefix '%m ...'
sub log_time
{
	my ($line) = @_;
	$line =~ /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)\.(\d+)/
	  or die "no time in: $line";
	return timegm($6, $5, $4, $3, $2 - 1, $1) + "0.$7";
}

# the postmaster logs every exit of a collector
my $exit_re = qr/background worker "pg_walvault collector" \(PID \d+\) exited with exit code 1/;
my @exits;
for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
{
	@exits = grep { /$exit_re/ } split /\n/, slurp_file($node->logfile);
	last if @exits >= 4;
	usleep(100_000);
}
cmp_ok(scalar(@exits), '>=', 4, 'the collector fails at start, again and again');
my @t = map { log_time($_) } @exits[ 0 .. 3 ];
my @gaps = map { $t[ $_ + 1 ] - $t[$_] } 0 .. 2;
note sprintf('gaps between the first failures: %.3f, %.3f, %.3f s', @gaps);
cmp_ok($gaps[0], '>=', 0.9, 'the second start waits about 1 s');
cmp_ok($gaps[1], '>=', 1.9, 'the third about 2 s');
cmp_ok($gaps[2], '>=', 3.9, 'the fourth about 4 s');

my $log = slurp_file($node->logfile);
like($log,
	qr/(?:ERROR|FATAL):  could not create the pg_walvault history of 1000000 samples\n.*DETAIL:  .*\n.*HINT:  Lower pg_walvault.history_size, or give dynamic shared memory more room: this history takes \d+ bytes, \d+ per sample\./,
	"the collector's error says what the history costs");
my @warnings = $log =~ /(WARNING:  pg_walvault collector stopped right after it started\n.*\n.*\n)/g;
is(scalar(@warnings), 1, 'the coordinator warns once');
like($warnings[0] // '',
	qr/DETAIL:  Its last error was: could not create the pg_walvault history of 1000000 samples\.  It is started again in 1 s, then after delays that double up to 60 s while it keeps failing\.\n.*HINT:  Fix the cause, then reload the configuration to start it at once\./,
	'with the reason and a hint');

# the fix: a smaller history, and a reload; the collector starts at once
# (well before the next delay of 8 s runs out) and stays
$node->append_conf('postgresql.conf', 'pg_walvault.history_size = 1000');
my $reload_time = time;
$node->reload;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'collector' AND state = 'idle'"),
	'after the fix and a reload the collector runs');
cmp_ok(time - $reload_time, '<', 8, 'without waiting out the delay');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) >= 5 FROM pg_stat_walvault_history WHERE sample_time > pg_postmaster_start_time()"),
	'and samples');

# the README gives the size of a sample that the server reports
my $desc = $node->safe_psql('postgres',
	"SELECT extra_desc FROM pg_settings WHERE name = 'pg_walvault.history_size'");
my ($size) = $desc =~ /Each sample takes (\d+) bytes/;
ok(defined $size, "the server tells the size of a sample ($desc)");
my $readme = slurp_file("$FindBin::RealBin/../README.md");
my @documented = $readme =~ /(\d+) bytes (?:a|per) sample/g;
ok(@documented > 0, 'the README gives it');
is(join(',', sort { $a <=> $b } keys %{ { map { $_ => 1 } @documented } }),
	$size // '', "as $size bytes, everywhere");

$node->stop;
done_testing();

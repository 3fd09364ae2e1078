# Reading the history never waits for the lock of the archive path, and so
# can never hold it up: an archive worker is stopped (with gdb) just after
# it took the main lock in exclusive mode, and the whole history can still
# be read and emptied.  Then the worker goes on and the backlog is
# archived.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my ($gdb) = grep { -x } map { "$_/gdb" } split /:/, $ENV{PATH};
plan skip_all => 'gdb is not installed' unless $gdb;
my $arch = `uname -m`;
plan skip_all => "the breakpoint condition reads x86-64 registers, this is $arch"
  unless $arch =~ /^x86_64/;

my $node = walvault_node('histlock', hold => 1,
	conf => "pg_walvault.stats_interval = '10ms'\n"
	  . "pg_walvault.max_workers = 1\npg_walvault.min_workers = 1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'"
) or die 'no idle worker';
$node->poll_query_until('postgres',
	'SELECT count(*) >= 100 FROM pg_stat_walvault_history')
  or die 'no history';
make_segments($node, 3);
my ($snap, @ready) = snapshot_ready($node);
my $worker = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker'");

# gdb stops the worker when it asks for the main lock (the first field of
# the fixed block) in exclusive mode (0), and lets it take it
my ($in, $out, $err) = ('', '', '');
my $timer = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
my $h = IPC::Run::start([ $gdb, '-q', '-nx', '-p', $worker ],
	'<', \$in, '>', \$out, '2>', \$err, $timer);
$in .= join('', map { "$_\n" } (
		'set pagination off',
		'set confirm off',
		'handle SIGUSR1 SIGUSR2 SIGHUP SIGINT SIGTERM SIGURG SIGALRM SIGPIPE nostop noprint pass',
		'set $main = *(long *) *(long *) &walvault_shared',
		'break LWLockAcquire if $rdi == $main && $rsi == 0',
		'echo BREAKPOINT-SET\n'));
$h->pump until $out =~ /BREAKPOINT-SET/ || $err =~ /ptrace|No symbol/ || $timer->is_expired;
if ($out !~ /BREAKPOINT-SET/ || $err =~ /ptrace: Operation not permitted/)
{
	$h->kill_kill;
	plan skip_all => "gdb cannot stop the worker: $err";
}
$in .= "continue\n";
$h->pump while $in ne '';

# give the worker a file: it takes the main lock to take it from the queue
set_archive_directory($node, $node->{walvault_archive});
$h->pump until $out =~ /Breakpoint 1,/ || $timer->is_expired;
ok($out =~ /Breakpoint 1,/, 'the archive worker asks for the main lock');
$in .= "finish\necho LOCK-HELD\\n\n";
$h->pump until $out =~ /LOCK-HELD/ || $timer->is_expired;
ok($out =~ /LOCK-HELD/, 'and holds it, stopped');

# the history, read whole, and emptied; each within 20 s or not at all
my $timed_out;
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	'SELECT count(*) FROM pg_stat_walvault_history',
	timeout => 20, timed_out => \$timed_out);
ok(!$timed_out && defined $ret && $ret == 0,
	'the history is read while the archive path holds its lock');
cmp_ok($stdout || 0, '>=', 100, 'all of it (' . ($stdout // '') . ' samples)');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT pg_stat_walvault_reset('history')",
	timeout => 20, timed_out => \$timed_out);
ok(!$timed_out && defined $ret && $ret == 0, 'and emptied');

# let the worker go
$in .= "detach\nquit\n";
$h->finish;
ok(1, 'the worker goes on');
wait_all_archived($node);
check_archived($node->{walvault_archive}, $snap, @ready);

$node->stop;
done_testing();

# A worker waits for pg_walvault.archive_command on its latch and on a pipe
# that the command's processes inherit.  A command that closes the
# descriptors it inherited (ssh does) ends the pipe long before it exits:
# the worker must then go on waiting for it without spinning.  Its CPU time
# (utime + stime in /proc/PID/stat) is measured while the command is held,
# then the command is released and the file is archived.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use POSIX ();
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('closedfds', hold => 1,
	conf => "pg_walvault.max_workers = 1\npg_walvault.min_workers = 1\npg_walvault.readahead = 0\n");
my $archive = $node->{walvault_archive};
my $marks = $node->basedir . '/marks';
make_path($marks);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'")
  or die 'worker did not start';
my $worker = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker'");

# The command closes every descriptor but 0, 1 and 2 (the pipe's write end
# among them), says so, and copies once it is let go.  exec: the shell
# would otherwise keep the pipe open itself.
my $script = $node->basedir . '/hold_closed.pl';
open(my $fh, '>', $script) or die "$script: $!";
print $fh <<"EOF";
#!$^X
use strict;
use warnings;
use File::Copy;
use POSIX ();

my (\$src, \$dst) = \@ARGV;
opendir(my \$dh, '/proc/self/fd') or die "/proc/self/fd: \$!";
my \@fds = grep { /^\\d+\$/ && \$_ > 2 } readdir(\$dh);
closedir \$dh;
POSIX::close(\$_) for \@fds;
open(my \$m, '>', '$marks/closed') or die;
close \$m;
select(undef, undef, undef, 0.05) until -e '$marks/go';
copy(\$src, "\$dst.tmp") or die "copy: \$!";
rename("\$dst.tmp", \$dst) or die "rename: \$!";
EOF
close $fh;
chmod 0755, $script or die $!;
$node->append_conf('postgresql.conf',
	"pg_walvault.archive_command = 'exec $script %p $archive/%f'");
$node->reload;

make_segments($node, 1);
my ($snap, @ready) = snapshot_ready($node);
cmp_ok(scalar(@ready), '>=', 1, 'files to archive, the oldest first');
$node->poll_query_until('postgres',
	"SELECT state = 'archiving' FROM pg_stat_walvault_workers WHERE pid = $worker")
  or die 'the worker did not start on the file';
# the command has closed its descriptors: the pipe is at end-of-file
for (my $i = 0; !-e "$marks/closed"; $i++)
{
	die 'the command did not close its descriptors'
	  if $i > $PostgreSQL::Test::Utils::timeout_default * 10;
	usleep(100_000);
}

# CPU time of the worker, in seconds
my $ticks = POSIX::sysconf(POSIX::_SC_CLK_TCK());
sub cpu_seconds
{
	open(my $st, '<', "/proc/$worker/stat") or die "/proc/$worker/stat: $!";
	my $line = <$st>;
	close $st;
	# the fields after the command name, which may hold spaces, in parentheses
	my @f = split / /, substr($line, rindex($line, ')') + 2);
	return ($f[11] + $f[12]) / $ticks;    # utime and stime: fields 14 and 15
}

# Over 3 seconds of waiting, a worker that sleeps uses almost no CPU; one
# that spins uses it all, and is caught as soon as it passes the bound.
my $cpu0 = cpu_seconds();
my $start = time();
my $used = 0;
while (time() - $start < 3 && $used < 0.2)
{
	usleep(100_000);
	$used = cpu_seconds() - $cpu0;
}
cmp_ok($used, '<', 0.2,
	sprintf('the worker waited for the command with little CPU (%.2f s in %.1f s)',
		$used, time() - $start));
is($node->safe_psql('postgres',
		"SELECT state FROM pg_stat_walvault_workers WHERE pid = $worker"),
	'archiving', 'and still waits for it');
ok(!-e "$archive/$ready[0]", 'the command has not archived the file yet');

# let the command go: the worker notices it has exited
open($fh, '>', "$marks/go") or die $!;
close $fh;
wait_all_archived($node);
check_archived($archive, $snap, @ready);

$node->stop;
done_testing();

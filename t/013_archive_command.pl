# pg_walvault.archive_command: the archive workers run the DBA's command, with
# archive_command's placeholders, for several files at once; a failing
# command is logged, counted and retried with WAL kept; setting both the
# command and the directory is refused clearly; with max_workers = 0 the
# archiver runs the command itself.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('command', hold => 1,
	conf => "pg_walvault.max_workers = 4\npg_walvault.min_workers = 4\n");
my $archive = $node->{walvault_archive};
my $marks = $node->basedir . '/marks';
make_path($marks);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
wait_for_pool($node, 4);

sub set_command
{
	my ($command) = @_;
	$node->append_conf('postgresql.conf',
		"pg_walvault.archive_command = '$command'");
	$node->reload;
	return;
}

# Each run records its arguments and how many runs were under way when it
# had started (a directory per running file), then copies.
make_segments($node, 8);
my ($snap, @ready) = snapshot_ready($node);
set_command("mkdir $marks/run.%f && sleep 0.3"
	  . " && ls -d $marks/run.* | wc -l >> $marks/concurrency"
	  . " && echo %f %p %% > $marks/%f.args"
	  . " && cp %p $archive/%f && rmdir $marks/run.%f");
wait_all_archived($node);
check_archived($archive, $snap, @ready);

open(my $fh, '<', "$marks/$ready[0].args") or die $!;
my $args = <$fh>;
close $fh;
is($args, "$ready[0] pg_wal/$ready[0] %\n", '%f, %p and %% are replaced');

open($fh, '<', "$marks/concurrency") or die $!;
my @counts = <$fh>;
close $fh;
my ($max) = sort { $b <=> $a } map { $_ + 0 } @counts;
cmp_ok($max, '>', 1, "commands ran at the same time (up to $max)");
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND files_archived > 0"),
	'>', 1, 'several workers ran the command');
is( $node->safe_psql('postgres',
		'SELECT archived_bytes = stored_bytes AND archived_count >= ' . scalar(@ready)
		  . ' FROM pg_stat_walvault'),
	't', 'counted as archived, with the bytes handed to the command');

# A failing command: logged with the command, counted, WAL kept; fixed by a
# reload.
set_command('exit 3');
make_segments($node, 1);
$node->poll_query_until('postgres',
	"SELECT failed_count > 0 AND last_error LIKE '%exit code 3%' FROM pg_stat_walvault")
  or die 'failure not reported';
ok($node->log_contains(qr/ERROR:  pg_walvault.archive_command failed: child process exited with exit code 3\n.*DETAIL:  The failed archive command was: exit 3/),
	'the failure is logged with the command');
my @kept = ready_files($node);
cmp_ok(scalar(@kept), '>=', 1, 'WAL is kept while the command fails');

# Both places set: a warning at reload, and every file fails with the reason.
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "pg_walvault.archive_directory = '$archive'");
set_command("cp %p $archive/%f");
$node->wait_for_log(qr/WARNING:  both pg_walvault.archive_directory and pg_walvault.archive_command are set/, $offset);
ok(1, 'setting both is a warning at reload');
$node->poll_query_until('postgres',
	"SELECT last_error LIKE 'both pg_walvault.archive_directory and pg_walvault.archive_command are set%' FROM pg_stat_walvault")
  or die 'both-set failure not reported';
ok(1, 'files fail with the reason while both are set');

# Only the command again: the kept WAL goes through.  Compression cannot
# apply to a command: that is said at reload.
$offset = -s $node->logfile;
$node->append_conf('postgresql.conf',
	"pg_walvault.archive_directory = ''\npg_walvault.compression = 'lz4'");
$node->reload;
wait_all_archived($node);
ok(-f "$archive/$kept[0]", 'archiving resumed once only the command is set');
$node->wait_for_log(qr/WARNING:  pg_walvault.compression has no effect with pg_walvault.archive_command/, $offset);
ok(1, 'compression with a command is a warning at reload');
ok(!-e "$archive/$kept[0].lz4", 'the command got the file as it is');
$node->append_conf('postgresql.conf', "pg_walvault.compression = off");
$node->reload;

# A command killed by SIGTERM (a hung upload stopped by hand, or a
# shutdown): the worker exits FATAL as the server's archiver would, and the
# file is archived again by the pool.
my $restarts = $node->safe_psql('postgres',
	"SELECT sum(restarts) FROM pg_stat_walvault_workers WHERE role = 'archive worker'");
set_command("test -f $marks/go || sleep 31; cp %p $archive/%f");
make_segments($node, 1);
my $victim = (ready_files($node))[-1];
my $event = wait_event_name($node, 'WalvaultArchiveCommand', 'ArchiveCommand');
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = '$event' AND backend_type = 'pg_walvault archive worker'")
  or die 'command did not start';
open($fh, '>', "$marks/go") or die $!;
close $fh;
my $shell_pid;
for my $cmdline (glob '/proc/[0-9]*/cmdline')
{
	open(my $ch, '<', $cmdline) or next;
	my $argv = <$ch> // '';
	close $ch;
	next unless $argv =~ /^sh\0-c\0.*sleep 31; cp/;
	($shell_pid) = $cmdline =~ m{/proc/(\d+)/};
	last;
}
ok(defined $shell_pid, 'found the shell running the command');
kill 'TERM', $shell_pid;
$node->wait_for_log(qr/FATAL:  pg_walvault.archive_command failed: child process was terminated by signal 15/);
ok(1, 'the worker exits FATAL when the command dies on SIGTERM');
wait_all_archived($node);
ok(-f "$archive/$victim", 'the file is archived again');
$node->poll_query_until('postgres',
	"SELECT sum(restarts) > $restarts FROM pg_stat_walvault_workers WHERE role = 'archive worker'")
  or die 'worker not restarted';
ok(1, 'the worker was replaced in its slot, which counts the restart');

# Pool of 0: the archiver runs the command itself.
$node->append_conf('postgresql.conf', "pg_walvault.max_workers = 0\npg_walvault.min_workers = 0");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_walvault_workers WHERE role = 'archive worker'")
  or die 'pool did not shrink';
make_segments($node, 2);
wait_all_archived($node);
cmp_ok(
	$node->safe_psql('postgres',
		"SELECT files_archived FROM pg_stat_walvault_workers WHERE role = 'archiver'"),
	'>=', 2, 'the archiver ran the command itself');

# The command may hold credentials: only superusers (and
# pg_read_all_settings) see it.
$node->safe_psql('postgres', 'CREATE ROLE walvault_user LOGIN');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	'SHOW pg_walvault.archive_command', extra_params => [ '-U', 'walvault_user' ]);
like($stderr, qr/permission denied to examine "pg_walvault.archive_command"|must be superuser or have privileges of pg_read_all_settings to examine "pg_walvault.archive_command"/,
	'an ordinary role cannot read the command');

$node->stop;
done_testing();

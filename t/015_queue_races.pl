# Races of the queue between the archiver and the workers, each made
# deterministic by an archive command that holds its file until the test
# creates a file:
# - a reload that changes where files go while the archiver waits for a
#   queued file must not stall archiving (the archiver cannot reload inside
#   the callback, so it must not judge where a file went);
# - a file put back in the queue by a worker that exits must wake an idle
#   worker, not wait for worker_idle_timeout;
# - while a command is slow, the worker running it and the archiver waiting
#   for it still absorb interrupts: DROP DATABASE, which waits for every
#   process to absorb a procsignal barrier, finishes.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

sub set_conf
{
	my ($node, $conf) = @_;
	$node->append_conf('postgresql.conf', $conf);
	$node->reload;
	return;
}

# The pid of the shell running a command that matches $re.
sub command_shell_pid
{
	my ($re) = @_;
	for my $cmdline (glob '/proc/[0-9]*/cmdline')
	{
		open(my $ch, '<', $cmdline) or next;
		my $argv = <$ch> // '';
		close $ch;
		return ($cmdline =~ m{/proc/(\d+)/})[0]
		  if $argv =~ /^sh\0-c\0/ && $argv =~ $re;
	}
	return undef;
}

# Run one scenario; if it dies (a wait that timed out), say so and go on
# with the next one.
sub scenario
{
	my ($name, $code) = @_;
	my $ok = eval { $code->(); 1 };
	fail("$name: $@") unless $ok;
	return;
}

###
### A reload while the archiver waits for a queued file
###
scenario('reload while the archiver waits', sub {
	my $node = walvault_node('reload', hold => 1,
		conf => "pg_walvault.min_workers = 2\npg_walvault.max_workers = 2\npg_walvault.readahead = 8\n");
	my $marks = $node->basedir . '/marks';
	my $archive = $node->{walvault_archive};
	make_path($marks);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
	make_segments($node, 6);
	my ($oldest) = ready_files($node);

	# The oldest file fails once; every other file waits for "go".  The
	# server retries the oldest a second later: it is queued behind two
	# workers held on the next files.
	my $command = "f=%f; if [ \$f = $oldest ] && [ ! -f $marks/failed ]; then touch $marks/failed; exit 1; fi;"
	  . " if [ \$f != $oldest ]; then while [ ! -f $marks/go ]; do sleep 0.1; done; fi; cp %p $archive/%f";
	set_conf($node, "pg_walvault.archive_command = '$command'");
	ok( $node->poll_query_until('postgres',
			"SELECT a.failed_count = 1 AND w.current_file = '$oldest' FROM pg_stat_archiver a, pg_stat_walvault_workers w WHERE w.role = 'archiver'"),
		'the oldest file failed and is asked for again');
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 2 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'archiving' AND current_file <> '$oldest'"),
		'both workers are held on later files');

	# the same command, written differently: where files go "changed"
	set_conf($node, "pg_walvault.archive_command = 'true && $command'");
	touch("$marks/go");
	wait_all_archived($node);
	ok(-f "$archive/$oldest", 'the backlog drained after the reload');
	$node->stop;
});

###
### A requeued file wakes an idle worker
###
scenario('requeued file', sub {
	my $node = walvault_node('requeue', hold => 1,
		conf => "pg_walvault.min_workers = 1\npg_walvault.max_workers = 2\npg_walvault.readahead = 2\npg_walvault.worker_idle_timeout = '1h'\n");
	my $marks = $node->basedir . '/marks';
	my $archive = $node->{walvault_archive};
	make_path($marks);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
	make_segments($node, 2);
	my ($victim, $second) = ready_files($node);

	set_conf($node,
		"pg_walvault.archive_command = 'if [ %f = $victim ]; then while [ ! -f $marks/go ]; do sleep 0.1; done; fi; cp %p $archive/%f'"
	);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND current_file = '$victim'")
	  or die 'no worker took the file';
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'")
	  or die 'the second worker did not go idle';
	ok(-f "$archive/$second", 'a second worker archived the read-ahead file and is idle');

	# The worker holding the file dies with its command; the pool keeps one
	# idle worker, which is enough: no replacement is started, and the
	# requeued file must wake the idle one.
	my $shell = command_shell_pid(qr/\Q$victim\E/) or die 'no shell';
	kill 'TERM', $shell;
	$node->wait_for_log(qr/FATAL:  pg_walvault.archive_command failed: child process was terminated by signal 15/);
	touch("$marks/go");
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_ls_archive_statusdir() WHERE name = '$victim.ready'"),
		'the requeued file was archived by the idle worker');
	ok(-f "$archive/$victim", 'it is in the archive');
	$node->stop;
});

###
### Interrupts are absorbed while a command is slow
###
scenario('interrupts', sub {
	my $node = walvault_node('interrupts', hold => 1,
		conf => "pg_walvault.min_workers = 1\npg_walvault.max_workers = 1\npg_walvault.readahead = 0\n");
	my $marks = $node->basedir . '/marks';
	my $archive = $node->{walvault_archive};
	make_path($marks);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

	# DROP DATABASE in the background; true once it finished
	my $drop = sub {
		my ($db) = @_;
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', "DROP DATABASE $db" ],
			'>', \$out, '2>', \$err);
		my $done = $node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_database WHERE datname = '$db'");
		return ($h, $done);
	};

	$node->safe_psql('postgres', 'CREATE DATABASE victim1');
	set_conf($node,
		"pg_walvault.archive_command = 'while [ ! -f $marks/go1 ]; do sleep 0.1; done; cp %p $archive/%f'");
	make_segments($node, 1);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'archiving'")
	  or die 'command did not start';
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archiver' AND state = 'archiving'")
	  or die 'the archiver does not wait';
	my ($h, $done) = $drop->('victim1');
	ok($done, 'DROP DATABASE finishes while a worker runs a slow command and the archiver waits for it');
	touch("$marks/go1");
	$h->finish;
	wait_all_archived($node);

	# a pool of 0: the archiver runs the slow command itself.  CREATE
	# DATABASE writes WAL enough to fill segments: they are archived with
	# the released command first, or the worker could take one just before
	# it is asked to leave, and hold it with the new command.
	$node->safe_psql('postgres', 'CREATE DATABASE victim2');
	wait_all_archived($node);
	set_conf($node, qq{pg_walvault.max_workers = 0
pg_walvault.min_workers = 0
pg_walvault.archive_command = 'while [ ! -f $marks/go2 ]; do sleep 0.1; done; cp %p $archive/%f'
});
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_walvault_workers WHERE role = 'archive worker'")
	  or die 'pool did not shrink';
	make_segments($node, 1);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archiver' AND state = 'archiving'")
	  or die 'the archiver does not run the command';
	($h, $done) = $drop->('victim2');
	ok($done, 'DROP DATABASE finishes while the archiver runs a slow command itself');
	touch("$marks/go2");
	$h->finish;
	wait_all_archived($node);
	$node->stop;
});

done_testing();

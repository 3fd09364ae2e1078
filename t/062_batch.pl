# pg_walvault.batch_size: into an archive directory, an archive worker takes
# several queued files at once, copies them all, fsyncs each, renames each,
# and makes all the names durable with one fsync of the directory.  The
# contract stays: a file is reported archived only after the fsync of the
# directory that covers its rename.
#
# One worker, so that only a batch can make one fsync cover several renames
# (the test hook of target_directory.c, PG_WALVAULT_TEST_DIRSYNC_HOLD,
# writes the tickets, one per rename, that each fsync covered; HOLD/hold.N
# holds the first fsync of a leader with N renames of its own, until
# HOLD/go exists):
#
# 1. with batch_size = 4, fsyncs cover four renames, never more;
#    with batch_size = 1, each covers one (so the first part can fail);
# 2. a batch held between its renames and their fsync: nothing is reported,
#    and after kill -9 of the worker every file is archived again;
# 3. a file of a batch already in the archive with other content fails
#    alone, with its error; the other files of the batch are archived;
# 4. an error before the renames (an archive directory the server cannot
#    write to) is logged once for the batch, and each file then fails on
#    its own with the error, counted; once the directory is writable
#    again, every file is archived.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $hold = PostgreSQL::Test::Utils::tempdir();
# inherited by the postmaster, and so by every process of the server
$ENV{PG_WALVAULT_TEST_DIRSYNC_HOLD} = $hold;

my $node = walvault_node('batch', hold => 1,
	conf => "restart_after_crash = on\npg_walvault.max_workers = 1\n"
	  . "pg_walvault.min_workers = 1\npg_walvault.batch_size = 4\n");
my $archive = $node->{walvault_archive};
my $status = $node->data_dir . '/pg_wal/archive_status';
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# How many renames each fsync since the last call covered, in order.
sub fsync_widths
{
	my $path = "$hold/fsyncs";
	my @widths;
	if (open(my $fh, '<', $path))
	{
		while (my $line = <$fh>)
		{
			my ($first, $last) = split ' ', $line;
			push @widths, $last - $first + 1;
		}
		close $fh;
	}
	unlink $path;
	return @widths;
}

sub archived_count
{
	return $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault');
}

# A backlog of n segments, held (archive_directory empty) while it is made.
sub backlog
{
	my ($n) = @_;
	set_archive_directory($node, '');
	wait_for_pool($node, 1);
	make_segments($node, $n);
	my ($snap, @ready) = snapshot_ready($node);
	return ($snap, grep { !-e "$archive/$_" } @ready);
}

# ---- 1. batches share one fsync of the directory ----
my ($snap, @ready) = backlog(16);
fsync_widths();
set_archive_directory($node, $archive);
wait_all_archived($node);
check_archived($archive, $snap, @ready);
my @widths = fsync_widths();
my @full = grep { $_ == 4 } @widths;
my @wider = grep { $_ > 4 } @widths;
cmp_ok(scalar(@full), '>=', 2,
	'with batch_size = 4, fsyncs of the directory covered four renames each ('
	  . join(' ', @widths) . ')');
is(scalar(@wider), 0, 'and none covered more than batch_size');
cmp_ok(scalar(@widths), '<', scalar(@ready),
	scalar(@widths) . ' fsyncs of the directory for ' . scalar(@ready) . ' files');
is($node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	'0', 'no file failed');

$node->append_conf('postgresql.conf', "pg_walvault.batch_size = 1\n");
($snap, @ready) = backlog(8);
fsync_widths();
set_archive_directory($node, $archive);
wait_all_archived($node);
check_archived($archive, $snap, @ready);
@widths = fsync_widths();
is(join(' ', grep { $_ != 1 } @widths), '',
	'with batch_size = 1, every fsync covered one rename (' . scalar(@widths) . ' fsyncs)');
$node->append_conf('postgresql.conf', "pg_walvault.batch_size = 4\n");

# ---- 2. a batch held between its renames and their fsync, then kill -9 ----
($snap, @ready) = backlog(12);
my $before = archived_count();
touch("$hold/hold.4");
set_archive_directory($node, $archive);

my $leader = held_pid($node, $hold);

my %in_backlog = map { ($_ => 1) } @ready;
my @renamed = grep { $in_backlog{$_} } archive_files($archive);
my @unreported = grep { !-e "$status/$_.done" } @renamed;
cmp_ok(scalar(@unreported), '>=', 4,
	scalar(@unreported) . ' files renamed into the archive and not marked done while the fsync of their batch is held');
my $counted = archived_count() - $before;
is($counted, scalar(@renamed) - scalar(@unreported),
	"only the files archived before the held batch are counted ($counted)");
is($node->safe_psql('postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $leader"),
	'pg_walvault archive worker', 'the worker holds the fsync of its batch');

kill 'KILL', $leader or die "could not kill $leader: $!";
$node->wait_for_log(qr/all server processes terminated; reinitializing/);
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart';
ok(1, "worker $leader killed while holding the fsync of its batch; cluster restarted");
wait_all_archived($node);
check_archived($archive, $snap, @ready);
# the counters restarted with shared memory: the renamed files were
# archived again (found in the archive and compared) and counted
cmp_ok(archived_count(), '>=', scalar(@unreported),
	'the files of the held batch are archived again after the restart');

# ---- 3. one file of a batch fails, the others do not ----
($snap, @ready) = backlog(8);
my $bad = $ready[2];
touch("$archive/$bad", 'not this WAL file');
chmod 0600, "$archive/$bad";
my $failed_before = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
set_archive_directory($node, $archive);
$node->poll_query_until('postgres',
	"SELECT failed_count > $failed_before AND last_failed_wal = '$bad' FROM pg_stat_walvault")
  or die "$bad did not fail";
like($node->safe_psql('postgres', 'SELECT last_error FROM pg_stat_walvault'),
	qr/already exists with different content/,
	'the file already in the archive with other content fails with its error');
# the worker archives ahead of the server, which retries the failed file
my @others = grep { $_ ne $bad } @ready;
$node->poll_query_until('postgres',
	'SELECT ' . join(' AND ',
		map { "(pg_stat_file('$archive/$_', true)).size = 1048576" } @others))
  or die 'the other files were not archived';
ok(-s "$archive/$bad" == length('not this WAL file'), 'the file in the archive is left alone');
unlink "$archive/$bad" or die "unlink $bad: $!";
wait_all_archived($node);
check_archived($archive, $snap, @ready);

# ---- 4. an error while the batch is copied ----
($snap, @ready) = backlog(6);
$failed_before = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
my $log_offset = -s $node->logfile;
chmod 0500, $archive or die "chmod $archive: $!";
set_archive_directory($node, $archive);
$node->wait_for_log(
	qr/LOG:  pg_walvault: could not archive [2-4] files together: could not create file "[^"]+": Permission denied\n[^\n]*DETAIL:  What was left undone is done one file at a time\./,
	$log_offset);
ok(1, 'the error of the batch is logged once, with what happens next');
$node->poll_query_until('postgres',
	"SELECT failed_count > $failed_before AND last_error LIKE 'could not create file %Permission denied' FROM pg_stat_walvault")
  or die 'no file failed';
ok(1, 'each file then fails on its own with the error, counted');
chmod 0700, $archive or die "chmod $archive: $!";
$node->reload;
wait_all_archived($node);
check_archived($archive, $snap, @ready);

$node->stop;
done_testing();

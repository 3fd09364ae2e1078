# The group fsync of the archive directory keeps the contract: a file is
# reported archived only once an fsync of the directory that began after its
# rename has succeeded.  The fsync is held deterministically by the test hook
# of target_directory.c (PG_WALVAULT_TEST_DIRSYNC_HOLD: a leader that finds
# HOLD/hold waits, before it snapshots the tickets, until HOLD/go exists):
#
# 1. renamed but not yet fsynced: nothing is reported (no .done, not counted),
#    and after kill -9 of the process holding the fsync, every file, the
#    renamed ones included, is archived again after the restart;
# 2. two or more workers that renamed while the fsync was held share it: all
#    report only after it, and one fsync covered all of their renames;
# 3. the archiver archiving by itself (max_workers = 0) withholds its report
#    until the fsync of its rename in the same way.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $hold = PostgreSQL::Test::Utils::tempdir();
# inherited by the postmaster, and so by every process of the server
$ENV{PG_WALVAULT_TEST_DIRSYNC_HOLD} = $hold;

my $node = walvault_node('group_fsync', hold => 1,
	conf => "restart_after_crash = on\npg_walvault.max_workers = 4\npg_walvault.min_workers = 4\n");
my $archive = $node->{walvault_archive};
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# WAL files renamed into the archive (temporary files start with a dot)
sub renamed_files
{
	return grep { /^[0-9A-F]{24}$/ } archive_files($archive);
}


# Other workers than the leader that renamed their file and wait for the
# fsync: archiving a file already in the archive.  Polled until there are
# at least $n, or until a file was reported archived, which would break the
# contract (the test then fails below instead of timing out).
sub wait_for_waiters
{
	my ($leader, $n, $archived_before) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT (SELECT count(*) FROM pg_stat_walvault_workers w
				WHERE w.role = 'archive worker' AND w.state = 'archiving'
				  AND w.pid <> $leader
				  AND (pg_stat_file('$archive/' || w.current_file, true)).size IS NOT NULL) >= $n
			OR (SELECT archived_count FROM pg_stat_walvault) > $archived_before})
	  or die 'no worker came to wait for the held fsync';
	return;
}

sub count_done
{
	my ($names) = @_;
	my %want = map { ("$_.done" => 1) } @$names;
	return scalar grep { $want{$_} }
	  split /\n/, $node->safe_psql('postgres', 'SELECT name FROM pg_ls_archive_statusdir()');
}

sub archived_count
{
	return $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault');
}

# ---- 1. held between the renames and their fsync, then kill -9 ----
wait_for_pool($node, 4);
make_segments($node, 20);
my ($snap, @ready) = snapshot_ready($node);
touch("$hold/hold");
set_archive_directory($node, $archive);

my $leader = held_pid($node, $hold);
wait_for_waiters($leader, 1, 0);
my @renamed = renamed_files();
cmp_ok(scalar(@renamed), '>=', 2,
	'while the fsync is held, at least two files are renamed into the archive');
is(archived_count(), '0', 'no file is counted archived before the fsync of its rename');
is(count_done(\@ready), 0, 'no file is marked done before the fsync of its rename');

kill 'KILL', $leader or die "could not kill $leader: $!";
$node->wait_for_log(qr/all server processes terminated; reinitializing/);
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart';
ok(1, "process $leader killed while holding the fsync of "
	  . scalar(@renamed) . ' renames; cluster restarted');

wait_all_archived($node);
check_archived($archive, $snap, @ready);
# the counters restarted with shared memory: every file, renamed before the
# crash or not, was archived (again) and counted in this run
cmp_ok(archived_count(), '>=', scalar(@ready),
	'every file counted archived after the restart, the renamed ones again');

# ---- 2. workers sharing one fsync report only after it ----
set_archive_directory($node, '');
wait_for_pool($node, 4);
make_segments($node, 20);
($snap, @ready) = snapshot_ready($node);
@ready = grep { !-f "$archive/$_" } @ready;
unlink "$hold/fsyncs";
my $before = archived_count();
touch("$hold/hold");
set_archive_directory($node, $archive);

$leader = held_pid($node, $hold);
wait_for_waiters($leader, 2, $before);
my %new = map { ($_ => 1) } @ready;
my $nrenamed = grep { $new{$_} } renamed_files();
cmp_ok($nrenamed, '>=', 3, "$nrenamed files renamed while the fsync is held");
is(archived_count(), $before, 'none of them counted archived during the hold');
is(count_done(\@ready), 0, 'none of them marked done during the hold');

touch("$hold/go");
wait_all_archived($node);
check_archived($archive, $snap, @ready);

# the fsyncs since the hold was armed: the held one is the widest (a file
# the server made ready meanwhile, the end of recovery's, may come first)
open(my $fh, '<', "$hold/fsyncs") or die "open $hold/fsyncs: $!";
my ($lo, $hi) = (0, -1);
while (my $line = <$fh>)
{
	my ($l, $h) = split ' ', $line;
	($lo, $hi) = ($l, $h) if $h - $l > $hi - $lo;
}
close $fh;
cmp_ok($hi - $lo + 1, '>=', $nrenamed,
	"one fsync covered the $nrenamed renames done while it was held (tickets $lo to $hi)");

# ---- 3. the archiver archiving by itself ----
$node->append_conf('postgresql.conf', "pg_walvault.max_workers = 0\npg_walvault.min_workers = 0\n");
set_archive_directory($node, '');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state <> 'stopped'")
  or die 'pool did not stop';
make_segments($node, 3);
($snap, @ready) = snapshot_ready($node);
@ready = grep { !-f "$archive/$_" } @ready;
$before = archived_count();
touch("$hold/hold");
set_archive_directory($node, $archive);

$leader = held_pid($node, $hold);
is($node->safe_psql('postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $leader"),
	'archiver', 'with max_workers = 0 the archiver leads the fsync');
cmp_ok(scalar(grep { -f "$archive/$_" } @ready), '>=', 1,
	'its file is renamed into the archive');
is(archived_count(), $before, 'and not counted archived during the hold');
is(count_done(\@ready), 0, 'nor marked done');
touch("$hold/go");
wait_all_archived($node);
check_archived($archive, $snap, @ready);

$node->stop;
done_testing();

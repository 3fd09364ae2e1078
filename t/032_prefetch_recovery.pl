# Point-in-time recovery with pg_walvault_restore -j, on real servers.
#
# The archive holds two timelines: timeline 1, archived with every
# compression in turn, and timeline 2, made by a recovery that stopped
# half-way through timeline 1 and was promoted (its history file is in the
# archive), archived into the same directory.  Both timelines have segments
# of the same numbers after the switch, with different content.
#
# A recovery to the latest timeline with -j prefetches timeline 1 segments
# beyond the switch point (it cannot know of the switch), and must never
# serve one: it ends with timeline 2's data.  When recovery ends, the
# prefetcher exits and the spool is removed.
#
# Then the server is killed with SIGKILL while a prefetch worker is held
# mid-file (a test-only hook): the prefetcher must notice, exit and remove
# the spool, and the restarted server must recover to the same end.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RestoreTest;
use Test::More;
use WalvaultTest;

my $primary = walvault_node('primary');
$primary->start;
$primary->safe_psql('postgres', 'CREATE TABLE t (i int, t text)');
$primary->backup('base');
my $archive = $primary->{walvault_archive};

sub insert_rows
{
	my ($node, $from, $label) = @_;
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, '$label' || md5(g::text) FROM generate_series($from, $from + 2999) g; SELECT pg_switch_wal()"
	);
	return;
}

my $data_query = "SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t";

# Timeline 1, two segments with each compression.
my $from = 0;
my $target_lsn;
foreach my $method ('zstd', 'lz4', 'gzip', 'off')
{
	$primary->append_conf('postgresql.conf',
		"pg_walvault.compression = '$method'");
	$primary->reload;
	insert_rows($primary, $from += 3000, "tl1-$method")
	  for 1 .. ($method eq 'off' ? 3 : 2);
	if ($method eq 'gzip')
	{
		$primary->safe_psql('postgres', "INSERT INTO t VALUES (-1, 'target')");
		$target_lsn = $primary->safe_psql('postgres',
			'SELECT pg_current_wal_insert_lsn()');
	}
}
my $tl1_data = $primary->safe_psql('postgres', $data_query);
wait_all_archived($primary);
$primary->stop;

# Timeline 2: recover up to the target, promote, write something else.
my $branch = PostgreSQL::Test::Cluster->new('branch');
$branch->init_from_backup($primary, 'base');
$branch->append_conf(
	'postgresql.conf', qq{
restore_command = 'pg_walvault_restore -d "$archive" %f %p'
recovery_target_lsn = '$target_lsn'
recovery_target_action = 'promote'
pg_walvault.compression = 'off'
});
open(my $fh, '>', $branch->data_dir . '/recovery.signal') or die $!;
close $fh;
$branch->start;
$branch->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the branch was not promoted';
insert_rows($branch, 100000 + $_ * 3000, 'tl2') for 1 .. 4;
my $tl2_data = $branch->safe_psql('postgres', $data_query);
wait_all_archived($branch);
$branch->stop;
isnt($tl2_data, $tl1_data, 'the two timelines hold different data');

my $history = slurp_file("$archive/00000002.history");
my ($switch_hi, $switch_lo) = $history =~ /^1\t([0-9A-F]+)\/([0-9A-F]+)/m
  or die "unexpected history file: $history";
my $switch_segno = (hex($switch_hi) * 4294967296 + hex($switch_lo)) >> 20;
note "timeline 2 branches off in segment $switch_segno";
ok( (grep { /^00000001/ && hex(substr($_, 16, 8)) > $switch_segno }
		  archive_files($archive)) >= 2,
	'timeline 1 has segments beyond the switch in the archive');

###
### Recovery to the latest timeline with -j 4
###
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($primary, 'base');
$restored->append_conf(
	'postgresql.conf', qq{
archive_mode = off
restore_command = 'pg_walvault_restore -v -j 4 -d "$archive" %f %p'
recovery_target_timeline = 'latest'
});
open($fh, '>', $restored->data_dir . '/recovery.signal') or die $!;
close $fh;
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'recovery did not finish';
is($restored->safe_psql('postgres', $data_query),
	$tl2_data, 'recovery with -j followed timeline 2');

my $log = slurp_file($restored->logfile);
my @prefetched_tl1 = grep { hex(substr($_, 16, 8)) > $switch_segno }
  $log =~ /prefetcher: prefetching (00000001[0-9A-F]{16})/g;
ok(@prefetched_tl1,
	"timeline 1 segments beyond the switch were prefetched (@prefetched_tl1)");
my @restored_tl1 = grep { hex(substr($_, 16, 8)) >= $switch_segno }
  $log =~ /restored log file "(00000001[0-9A-F]{16})" from archive/g;
is("@restored_tl1", '', 'no timeline 1 segment past the switch was restored');
like($log, qr/restored log file "00000002[0-9A-F]{16}" from archive/,
	'timeline 2 segments were restored');

# every compression was served from the spool
my %served_as;
foreach my $name ($log =~ /restored "([0-9A-F]{24})" from the prefetch spool/g)
{
	my ($suffix) = grep { -e "$archive/$name$_" } ('', '.zst', '.lz4', '.gz');
	$served_as{$suffix // '?'}++;
}
is( join(',', sort keys %served_as),
	',.gz,.lz4,.zst',
	'segments of every compression were served from the spool');

my ($pf) = $log =~ /prefetcher started \(pid (\d+)/;
my $spool = $restored->data_dir . '/pg_wal/pg_walvault_spool';
ok(wait_until(sub { !kill(0, $pf) && !-e $spool }),
	'recovery ended: the prefetcher exited and the spool is removed');
$restored->stop;

###
### SIGKILL of the server while a worker is held mid-file
###
my $killed = PostgreSQL::Test::Cluster->new('killed');
$killed->init_from_backup($primary, 'base');
my ($start_seg) =
  slurp_file($killed->data_dir . '/backup_label') =~ /\(file ([0-9A-F]{24})\)/;
my $held = sprintf('%s%08X', substr($start_seg, 0, 16),
	hex(substr($start_seg, 16, 8)) + 3);
my $fifo = $killed->basedir . '/hold.fifo';
system('mkfifo', $fifo) == 0 or die 'mkfifo failed';
$killed->append_conf(
	'postgresql.conf', qq{
archive_mode = off
restore_command = 'PG_WALVAULT_RESTORE_TEST_HOLD=worker:$held:$fifo pg_walvault_restore -v -j 2 -d "$archive" %f %p'
});
open($fh, '>', $killed->data_dir . '/recovery.signal') or die $!;
close $fh;
$killed->start;

my $line;
{
	local $SIG{ALRM} = sub { die "timed out waiting for the held worker\n" };
	alarm($PostgreSQL::Test::Utils::timeout_default);
	open(my $rd, '<', $fifo) or die "open $fifo: $!";
	$line = <$rd>;
	close $rd;
	alarm(0);
}
my ($worker, $temp) = split ' ', $line;
$spool = $killed->data_dir . '/pg_wal/pg_walvault_spool';
ok(-f $killed->data_dir . "/$temp", "a worker holds $held mid-file in the spool");
my ($pf2) = slurp_file("$spool/prefetcher.lock") =~ /^(\d+)/;

$killed->kill9;
ok(wait_until(sub { !kill(0, $pf2) && !kill(0, $worker) && !-e $spool }),
	'server killed: the prefetcher and its worker exited, the spool is removed');

# every process of the killed server is gone before it starts again
my %pids = map { $_ => 1 } slurp_file($killed->logfile) =~ /\[(\d+)\]/g;
ok(wait_until(sub { !grep { kill(0, $_) } keys %pids }),
	'every process of the killed server exited');

$killed->append_conf('postgresql.conf',
	qq{restore_command = 'pg_walvault_restore -v -j 2 -d "$archive" %f %p'});
$killed->start;
$killed->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'recovery did not finish';
is($killed->safe_psql('postgres', $data_query),
	$tl2_data, 'after the restart, recovery reaches the same end');
$killed->stop;

done_testing();

# A streaming standby that archives through pg_walvault itself
# (archive_mode = always) into its own directory: while its archive is
# blocked, pending_count, archive_lag_bytes and the history's wal_bytes
# follow the WAL it receives (not its insert position, which does not move
# during recovery); once unblocked they return to near zero, and it has
# archived every segment the primary did, byte-identical.  After its
# promotion, the new timeline's history file and the old timeline's
# .partial segment are archived too.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Compare;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $seg = 1024 * 1024;    # the nodes' WAL segment size
my $nseg = 8;             # segments made while the standby's archive is blocked

my $primary = walvault_node('primary', conf => "wal_keep_size = 128MB\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
my $sarchive = $standby->basedir . '/archive';
mkdir $sarchive or die "mkdir $sarchive: $!";
$standby->append_conf(
	'postgresql.conf', qq{
archive_mode = always
pg_walvault.archive_directory = '$sarchive'
pg_walvault.stats_interval = '100ms'
});
$standby->start;
$primary->wait_for_catchup('standby');
ok( $standby->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'collector'"),
	'the standby runs its collector');

# segments after this one are streamed whole to the standby (this one may
# have come partly with the base backup, which marks it archived)
my $first = $primary->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_lsn())');

# block the standby's archive, and stream segments to it
chmod 0500, $sarchive or die "chmod $sarchive: $!";
my $mark = $standby->safe_psql('postgres', 'SELECT now()');
make_segments($primary, $nseg);
$primary->wait_for_catchup('standby');
ok( $standby->poll_query_until('postgres',
		"SELECT pending_count >= $nseg FROM pg_stat_walvault"),
	"pending_count grows on the blocked standby");
my ($pending, $lag) = split /\|/, $standby->safe_psql('postgres',
	'SELECT pending_count, archive_lag_bytes FROM pg_stat_walvault');
cmp_ok($lag, '>=', $nseg * $seg,
	"archive_lag_bytes covers the $pending pending segments ($lag bytes)");
# (the first of the segments was begun before $mark)
ok( $standby->poll_query_until('postgres',
		"SELECT max(archive_lag_bytes) >= $nseg * $seg AND sum(wal_bytes) >= ($nseg - 1) * $seg FROM pg_stat_walvault_history WHERE sample_time > '$mark'"
	),
	"the standby's history follows the WAL it received and the lag");
cmp_ok($standby->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	'>', 0, 'the blocked archive counts failures');

# unblock: the SIGHUP of the reload also wakes the standby's archiver
chmod 0700, $sarchive or die "chmod $sarchive: $!";
$standby->reload;
wait_all_archived($standby);
ok( $standby->poll_query_until('postgres',
		"SELECT pending_count = 0 AND archive_lag_bytes < $seg FROM pg_stat_walvault"),
	'pending_count and archive_lag_bytes return to near zero');
ok( $standby->poll_query_until('postgres',
		"SELECT archive_lag_bytes < $seg FROM pg_stat_walvault_history ORDER BY sample_time DESC LIMIT 1"
	),
	'and so does the lag in the newest sample');

# every segment the primary archived since the standby streams is in the
# standby's archive, identical
wait_all_archived($primary);
my @primary_segs = grep { /^[0-9A-F]{24}$/ && $_ gt $first }
  archive_files($primary->{walvault_archive});
my @bad;
for my $f (@primary_segs)
{
	my $s = "$sarchive/$f";
	if (!-f $s) { push @bad, "$f missing"; next; }
	push @bad, "$f differs"
	  if compare($s, $primary->{walvault_archive} . "/$f") != 0;
}
cmp_ok(scalar(@primary_segs), '>=', $nseg - 1, 'the primary archived the segments');
is(join(', ', @bad), '',
	scalar(@primary_segs) . ' segments archived by the standby, byte-identical');

# a clean restart of the standby (a shutdown restartpoint) keeps its
# statistics
my $stats = $standby->safe_psql('postgres',
	'SELECT archived_count, stats_reset FROM pg_stat_walvault');
$standby->restart;
is($standby->safe_psql('postgres',
		'SELECT archived_count, stats_reset FROM pg_stat_walvault'),
	$stats, "the standby's statistics survive its clean restart");

# promotion: the new timeline's history file and the .partial segment of
# the old one (which ends in the middle of a segment) are archived
$primary->safe_psql('postgres', 'CREATE TABLE before_promotion (i int)');
$primary->wait_for_catchup('standby');
$primary->stop;
$standby->promote;
my $partial;
ok( $standby->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"),
	'the promoted standby archived what it had ready');
my @promoted = archive_files($sarchive);
ok((grep { $_ eq '00000002.history' } @promoted),
	"the new timeline's history file is archived");
is( compare("$sarchive/00000002.history",
		$standby->data_dir . '/pg_wal/00000002.history'),
	0, 'identical to the one in pg_wal');
($partial) = grep { /^00000001[0-9A-F]{16}\.partial$/ } @promoted;
ok(defined $partial, 'the last segment of the old timeline is archived as .partial');
is(-s "$sarchive/$partial", $seg, 'full size') if defined $partial;

# once promoted, the lag follows the insert position again
$standby->safe_psql('postgres', 'SELECT pg_switch_wal()');
$standby->safe_psql('postgres', 'CREATE TABLE after_promotion (i int)');
ok( $standby->poll_query_until('postgres',
		"SELECT pending_count = 0 AND archive_lag_bytes > 0 AND archive_lag_bytes < $seg FROM pg_stat_walvault"
	),
	'the promoted standby computes the lag from its insert position');

$standby->stop;
done_testing();

# pg_walvault.mark_done_ahead: once the file the server asked for is
# archived, the archiver marks the files that the workers have archived
# ahead done itself, and the server skips them.  Only files that are
# archived are marked: not one a worker is still archiving, not one that
# failed; the newest is left for the server to ask for, so that
# pg_stat_archiver's last_archived_wal names it after a drain.  Off, the
# server asks for every file.
#
# Made deterministic with pg_walvault.archive_command: a command that waits
# while HOLD/held.FILE exists and fails while HOLD/fail.FILE exists.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('mark_done_ahead', hold => 1,
	conf => "pg_walvault.max_workers = 4\npg_walvault.min_workers = 4\n");
my $archive = $node->{walvault_archive};
my $hold = PostgreSQL::Test::Utils::tempdir();
my $status = $node->data_dir . '/pg_wal/archive_status';
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
wait_for_pool($node, 4);

# .ready or .done (or none) for each name, as one string
sub states
{
	my (@names) = @_;
	return join(' ',
		map { -e "$status/$_.done" ? 'done' : -e "$status/$_.ready" ? 'ready' : 'none' }
		  @names);
}

make_segments($node, 10);
my ($snap, @ready) = snapshot_ready($node);
my $n = scalar(@ready);
cmp_ok($n, '>=', 10, "a backlog of $n ready segments");
my ($first, $failing, $held, $newest) = @ready[ 0, 3, 5, $n - 1 ];

# The first file is held until everything else has been tried; the fourth
# fails; the sixth stays held.
touch("$hold/held.$first");
touch("$hold/held.$held");
touch("$hold/fail.$failing");
$node->append_conf('postgresql.conf',
	"pg_walvault.archive_command = 'while [ -e $hold/held.%f ]; do sleep 0.01; done; [ ! -e $hold/fail.%f ] && cp %p $archive/%f'"
);
$node->reload;

$node->poll_query_until('postgres',
	"SELECT archived_count = $n - 3 AND failed_count > 0 FROM pg_stat_walvault")
  or die 'the workers did not archive ahead';
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND current_file IN ('$first', '$held')")
  or die 'the held files are not being archived';
is(states(@ready), join(' ', ('ready') x $n),
	'nothing is marked done while the archiver waits for its file');

# Release the first file: the archiver marks what was archived ahead, and
# the server skips those and stops at the failing file.
unlink "$hold/held.$first" or die $!;
$node->poll_query_until('postgres',
	"SELECT failed_count > 0 AND last_failed_wal = '$failing' FROM pg_stat_archiver")
  or die 'the server did not reach the failing file';
my @expect = map {
	my $f = $ready[$_];
	($f eq $failing || $f eq $held || $f eq $newest) ? 'ready' : 'done'
} 0 .. $n - 1;
is(states(@ready), join(' ', @expect),
	'files archived ahead are marked done; the failed, the held and the newest are not');
is( $node->safe_psql('postgres',
		'SELECT archived_count, last_archived_wal FROM pg_stat_archiver'),
	"1|$first",
	'the server asked only for the first file, and skipped those marked done');
ok(!-e "$archive/$failing" && !-e "$archive/$held",
	'the files left ready are not in the archive');

# Let everything through, and wake the archiver with one more segment.
unlink "$hold/fail.$failing", "$hold/held.$held" or die $!;
make_segments($node, 1);
wait_all_archived($node);
check_archived($archive, $snap, @ready);
my @more = grep { !-e "$snap/$_" } archive_files($archive);
my $total = $n + scalar(@more);
my ($server_count, $server_last) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT archived_count, last_archived_wal FROM pg_stat_archiver');
cmp_ok($server_count, '<', $total,
	"the server asked for $server_count of the $total files");
is($server_last, $more[-1] // $newest,
	'pg_stat_archiver names the newest file after the drain');
cmp_ok($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
	'>=', $total, 'pg_stat_walvault counts every file');

# Off: the server asks for every file again.
$node->append_conf('postgresql.conf', 'pg_walvault.mark_done_ahead = off');
$node->restart;
my $before = $node->safe_psql('postgres',
	'SELECT archived_count FROM pg_stat_archiver');
my $in_archive = scalar(archive_files($archive));
make_segments($node, 8);
wait_all_archived($node);
is( $node->safe_psql('postgres',
		'SELECT archived_count FROM pg_stat_archiver') - $before,
	scalar(archive_files($archive)) - $in_archive,
	'with mark_done_ahead off the server asks for every file');

$node->stop;
done_testing();

# A corrupt archived segment stops recovery; it never ends it.
#
# The reproduction of issue 9: point-in-time recovery with no target, from
# a base backup, where one archived segment four before the end has a
# broken page header.  pg_walvault_restore used to exit 2, which the server
# takes for "not in the archive": it finished recovery there, logged
# "archive recovery complete", chose a new timeline and dropped every later
# transaction.  Now the server stops with FATAL, the file is named in the
# log, and once the file is repaired recovery goes on to the end.  The same
# with -j, where the corrupt segment was prefetched first.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WalvaultTest;

my $node = walvault_node('primary');
$node->start;
$node->safe_psql('postgres', 'CREATE TABLE t (i int, t text)');
$node->backup('base');
for my $i (1 .. 10)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, md5(g::text) FROM generate_series($i * 1000, $i * 1000 + 999) g; SELECT pg_switch_wal()"
	);
}
my $expected = $node->safe_psql('postgres',
	"SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t");
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
wait_all_archived($node);
$node->stop;

my $archive = $node->{walvault_archive};
my @segments = grep { /^[0-9A-F]{24}$/ } archive_files($archive);
my $bad = $segments[-5];    # four before the last
note "breaking $bad; segments archived: @segments";

# Break the first page header (its magic) of a copy of the good file.
my $good = slurp_file("$archive/$bad");
my $broken = $good;
substr($broken, 0, 2) = "\xFF\xFF";

# Wait until the postmaster of $node has exited by itself.
sub wait_for_postmaster_exit
{
	my ($n) = @_;
	my $pidfile = $n->data_dir . '/postmaster.pid';
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		return 1 unless -e $pidfile;
		usleep(100_000);
	}
	return 0;
}

sub write_archive_file
{
	my ($content) = @_;
	open(my $fh, '>', "$archive/$bad") or die "open: $!";
	binmode $fh;
	print $fh $content;
	close $fh;
	return;
}

foreach my $jobs ('', '-j 3')
{
	my $label = $jobs eq '' ? 'serial' : "with $jobs";
	(my $name = "restored_$label") =~ s/\W+/_/g;

	write_archive_file($broken);
	my $restored = PostgreSQL::Test::Cluster->new($name);
	$restored->init_from_backup($node, 'base');

	# The server becomes consistent (and pg_ctl returns) before it reaches
	# the broken segment; then it must stop by itself.  Its request for that
	# segment waits until the test has seen the start through (the harness
	# reads postmaster.pid once pg_ctl returns, and the server must not be
	# gone already): a file the test creates releases it.
	my $go = $restored->basedir . '/go';
	my $cmd = qq{sh -c 'if [ "\$1" = "$bad" ]; then while [ ! -e "$go" ]; do sleep 0.1; done; fi; exec pg_walvault_restore -v $jobs -d "$archive" "\$1" "\$2"' restore %f %p};
	$cmd =~ s/'/''/g;
	$restored->append_conf(
		'postgresql.conf', qq{
archive_mode = off
restore_command = '$cmd'
});
	open(my $fh, '>', $restored->data_dir . '/recovery.signal') or die $!;
	close $fh;

	$restored->start;
	open($fh, '>', $go) or die $!;
	close $fh;
	$restored->wait_for_log(
		qr/FATAL: .*could not restore file "$bad" from archive: child process exited with exit code 255/
	);
	ok(wait_for_postmaster_exit($restored), "$label: the server stopped");
	$restored->stop('fast', fail_ok => 1);

	my $log = slurp_file($restored->logfile);
	like(
		$log,
		qr/pg_walvault_restore: error: restored content of ".*\/$bad" has invalid WAL page magic 0xFFFF/,
		"$label: the log names the broken file and what is wrong with it");
	unlike($log, qr/archive recovery complete/,
		"$label: archive recovery did not complete");
	unlike($log, qr/selected new timeline ID/, "$label: no new timeline");
	ok(!-e $restored->data_dir . '/pg_wal/00000002.history',
		"$label: no history file of a new timeline");
	if ($jobs)
	{
		like($log, qr/prefetcher: prefetch of $bad failed/,
			"$label: the broken segment had been prefetched");
	}

	# Repaired, recovery goes on from where it stopped, to the end.
	write_archive_file($good);
	$restored->start;
	$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'recovery did not finish';
	is( $restored->safe_psql('postgres',
			"SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t"),
		$expected,
		"$label: after the repair, recovery reaches the end of the archive");
	$restored->stop;
}

done_testing();

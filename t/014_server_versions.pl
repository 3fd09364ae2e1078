# What newer servers give, used where a DBA sees it, and the same behaviour
# where they differ: wait events of our own (17+), the reason archiving is
# not configured (17+), failures counted by us although 17's archiver traps
# errors itself, and the library's name and version (18+).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('versions', hold => 1,
	conf => "pg_walvault.max_workers = 2\npg_walvault.min_workers = 2\n");
my $version = $node->pg_version;
my $marks = $node->basedir . '/marks';
make_path($marks);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# Not configured: 17 lets the module say why, as the DETAIL of the server's
# warning; before 17 the server logs the warning alone.
make_segments($node, 1);
$node->wait_for_log(qr/archiving is not configured/);
if ($version >= 17)
{
	$node->wait_for_log(
		qr/DETAIL:  None of pg_walvault.archive_directory, pg_walvault.archive_command and pg_walvault.archive_url is set\./);
	ok(1, 'the server says why archiving is not configured');
}
else
{
	ok(!$node->log_contains(qr/DETAIL:  None of pg_walvault/),
		'before 17 the server has no detail to show');
}

# What each process waits for.  A command that waits for a file the test
# creates holds a worker, and the archiver that waits for it.
my %event = (
	coordinator => wait_event_name($node, 'WalvaultCoordinatorMain', 'Extension'),
	collector => wait_event_name($node, 'WalvaultCollectorMain', 'Extension'),
	idle => wait_event_name($node, 'WalvaultWorkerIdle', 'Extension'),
	archiver => wait_event_name($node, 'WalvaultWaitWorker', 'Extension'),
	command => wait_event_name($node, 'WalvaultArchiveCommand', 'ArchiveCommand'));

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'pg_walvault archive worker' AND wait_event = '$event{idle}'"),
	"idle workers wait on $event{idle}");
ok( $node->poll_query_until('postgres',
		"SELECT wait_event = '$event{coordinator}' FROM pg_stat_activity WHERE backend_type = 'pg_walvault coordinator'"),
	"the coordinator waits on $event{coordinator}");
ok( $node->poll_query_until('postgres',
		"SELECT wait_event = '$event{collector}' FROM pg_stat_activity WHERE backend_type = 'pg_walvault collector'"),
	"the collector waits on $event{collector}");

$node->append_conf('postgresql.conf', qq{
pg_walvault.readahead = 0
pg_walvault.archive_command = 'while [ ! -f $marks/go ]; do sleep 0.1; done; cp %p $node->{walvault_archive}/%f'
});
$node->reload;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_walvault archive worker' AND wait_event = '$event{command}'"),
	"a worker running the command waits on $event{command}");
ok( $node->poll_query_until('postgres',
		"SELECT wait_event = '$event{archiver}' FROM pg_stat_activity WHERE backend_type = 'archiver'"),
	"the archiver waiting for it waits on $event{archiver}");
open(my $fh, '>', "$marks/go") or die $!;
close $fh;
wait_all_archived($node);

# Copying, compressing and syncing are too quick to catch in the act; from
# 17 on, a name is registered by the first process that waits on it, so the
# server's list shows which of ours were used.
$node->append_conf('postgresql.conf', qq{
pg_walvault.archive_command = ''
pg_walvault.archive_directory = '$node->{walvault_archive}'
});
$node->reload;
make_segments($node, 2);
wait_all_archived($node);
$node->append_conf('postgresql.conf', "pg_walvault.compression = 'lz4'");
$node->reload;
make_segments($node, 2);
wait_all_archived($node);
# a file the server asks for again (a crash before it noted the success) is
# compared with the copy in the archive
my ($again) = grep { /^[0-9A-F]{24}$/ && -f $node->data_dir . "/pg_wal/archive_status/$_.done" }
  map { s/\.lz4$//r } archive_files($node->{walvault_archive});
rename($node->data_dir . "/pg_wal/archive_status/$again.done",
	$node->data_dir . "/pg_wal/archive_status/$again.ready") or die $!;
make_segments($node, 1);    # wakes the archiver
wait_all_archived($node);
SKIP:
{
	skip 'custom wait events need PostgreSQL 17', 1 if $version < 17;
	is( $node->safe_psql('postgres',
			"SELECT string_agg(name, ',' ORDER BY name COLLATE \"C\") FROM pg_wait_events WHERE type = 'Extension' AND name LIKE 'Walvault%'"),
		'WalvaultArchiveCommand,WalvaultCollectorMain,WalvaultCompare,WalvaultCompress,WalvaultCoordinatorMain,WalvaultCopy,WalvaultSync,WalvaultWaitWorker,WalvaultWorkerIdle',
		'every wait event of ours was used, under its name');
}

# A failing file is counted by us as by the server, on every version (17's
# archiver would trap an error we let through, and we would not count it).
my $failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
my $server_failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_archiver');
$node->append_conf('postgresql.conf', qq{
pg_walvault.compression = off
pg_walvault.archive_directory = '$marks/missing'
});
$node->reload;
make_segments($node, 1);
ok( $node->poll_query_until('postgres',
		"SELECT failed_count >= $server_failed + 2 FROM pg_stat_archiver"),
	'the server counts failed attempts');
my ($ours, $servers) = split /\|/, $node->safe_psql('postgres',
	'SELECT w.failed_count, a.failed_count FROM pg_stat_walvault w, pg_stat_archiver a');
cmp_ok($ours - $failed, '>=', $servers - $server_failed,
	'every failed attempt is counted in pg_stat_walvault too');
like($node->safe_psql('postgres', 'SELECT last_error FROM pg_stat_walvault'),
	qr/could not create file .*missing/, 'with its error');

# 18 lists loaded libraries with their name and version.
SKIP:
{
	skip 'pg_get_loaded_modules() needs PostgreSQL 18', 1 if $version < 18;
	my $extversion = $node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault'");
	is( $node->safe_psql('postgres',
			"SELECT module_name || ' ' || version FROM pg_get_loaded_modules() WHERE file_name = 'pg_walvault.so'"),
		"pg_walvault $extversion",
		'pg_get_loaded_modules() shows the library and its version');
}

$node->stop;
done_testing();

# A clean shutdown with a backlog: background workers are stopped before the
# server's last archive cycle, so the archiver archives what is left by
# itself, and nothing stays behind.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('shutdown', hold => 1,
	conf => "pg_walvault.max_workers = 2\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
make_segments($node, 30);
my ($snap, @ready) = snapshot_ready($node);

# release the backlog and shut down at once, with WAL in the current
# segment so that the shutdown checkpoint switches to a new one
set_archive_directory($node, $node->{walvault_archive});
$node->safe_psql('postgres', 'INSERT INTO walvault_filler VALUES (0)');
$node->stop('fast');

is(join(',', ready_files($node)), '', 'no file left ready after shutdown');
check_archived($node->{walvault_archive}, $snap, @ready);

# the shutdown checkpoint switched to a new segment, archived after the
# workers were gone: by the archiver itself
my @archived = grep { /^[0-9A-F]{24}$/ } archive_files($node->{walvault_archive});
cmp_ok(scalar(@archived), '>', scalar(@ready),
	'the segment switched at shutdown was archived too');
ok( $node->log_contains(
		qr/no archive worker is available, the archiver archives files itself/),
	'the archiver archived the final segments itself');

# and the server starts again with nothing to redo
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE \'%.ready\''),
	'0', 'nothing ready after restart');
$node->stop;
done_testing();

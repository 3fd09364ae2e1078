# pg_walvault as archive_library without shared_preload_libraries: one
# WARNING, then the archiver archives every file itself; the SQL functions
# explain what is missing.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('nopreload', hold => 1, preload => 0);
$node->start;
make_segments($node, 5);
my ($snap, @ready) = snapshot_ready($node);
set_archive_directory($node, $node->{walvault_archive});
wait_all_archived($node);
check_archived($node->{walvault_archive}, $snap, @ready);

my @warnings = (slurp_file($node->logfile) =~
	  /pg_walvault is archiving without parallel workers/g);
is(scalar(@warnings), 1, 'one warning that workers need preloading');
ok($node->log_contains(qr/HINT:  Add pg_walvault to shared_preload_libraries/),
	'with a hint naming the setting');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM pg_stat_walvault');
isnt($ret, 0, 'the views fail without preloading');
like($err, qr/pg_walvault must be loaded via shared_preload_libraries/,
	'with a clear error');
like($err, qr/HINT:  Add pg_walvault to shared_preload_libraries/,
	'and a hint naming the setting');
$node->stop;
done_testing();

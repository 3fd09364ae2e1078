# Only names the server itself gives WAL files ever reach a path or a
# command of ours.  A .ready file with a crafted name in archive_status (the
# server never makes one, and never archives it) must not be read ahead:
# with pg_walvault.archive_command set, its name would reach the shell.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('names', hold => 1,
	conf => "pg_walvault.max_workers = 2\npg_walvault.readahead = 16\n");
my $archive = $node->{walvault_archive};
my $marks = $node->basedir . '/marks';
my $status = $node->data_dir . '/pg_wal/archive_status';
make_path($marks);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
make_segments($node, 4);

# passes the server's IsBackupHistoryFileName(): its prefix and suffix are
# those of a backup history file
my $crafted = '000000010000000000000001;id>PW;.backup';
for my $path ("$status/$crafted.ready", $node->data_dir . "/pg_wal/$crafted")
{
	open(my $fh, '>', $path) or die "$path: $!";
	close $fh;
}

$node->append_conf('postgresql.conf',
	"pg_walvault.archive_command = 'echo %f >> $marks/names; cp %p $archive/%f'");
$node->reload;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"),
	'every real file was archived');
make_segments($node, 2);    # another round of read-ahead
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"),
	'and the next ones');

ok(!-e $node->data_dir . '/PW', 'no command ran with the crafted name');
unlike(slurp_file("$marks/names"), qr/;/, 'the command never got it');
ok(-e "$status/$crafted.ready" && -e $node->data_dir . "/pg_wal/$crafted",
	'the crafted files are left where they are');

$node->stop;
done_testing();

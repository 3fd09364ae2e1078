# What goes wrong with the archive directory never stops the server: a
# missing directory is a WARNING at start, failures are logged, counted and
# shown while WAL is kept, and archiving resumes by itself once it is fixed.
# A file already in the archive is never overwritten.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('direrrors', no_archive_dir => 1);
my $archive = $node->{walvault_archive};
$node->start;
# the coordinator checks the directory when it starts, after the server
$node->wait_for_log(
	qr/WARNING:  pg_walvault.archive_directory "\Q$archive\E" is not usable: No such file or directory/);
ok(1, 'a missing directory is a warning at start naming setting and path');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

# missing directory: failures counted and shown, WAL kept
make_segments($node, 3);
$node->poll_query_until('postgres',
	"SELECT failed_count > 0 AND last_error LIKE '%No such file or directory%' FROM pg_stat_walvault")
  or die 'failure not reported';
is( $node->safe_psql('postgres',
		"SELECT count(*) > 0 FROM pg_stat_walvault_workers WHERE last_error LIKE '%No such file or directory%'"),
	't', 'the failing process shows its last error');
cmp_ok(scalar(ready_files($node)), '>=', 3, 'WAL is kept while archiving fails');
ok($node->log_contains(qr/archive worker ERROR:  could not create file/),
	'the failure is logged by the worker');

# fixed: archiving resumes without any action on the server
make_path($archive);
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');    # as new WAL would
wait_all_archived($node);
ok(1, 'archiving resumed once the directory exists');

# unwritable directory (root ignores permissions: skip then)
SKIP:
{
	skip 'permissions do not apply to root', 2 if $> == 0;
	chmod 0500, $archive or die $!;
	my $failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
	make_segments($node, 1);
	$node->poll_query_until('postgres',
		"SELECT failed_count > $failed AND last_error LIKE '%Permission denied%' FROM pg_stat_walvault")
	  or die 'permission failure not reported';
	ok(1, 'an unwritable directory is reported');
	chmod 0700, $archive or die $!;
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	wait_all_archived($node);
	ok(1, 'archiving resumed once the directory is writable');
}

# a different file under the same name is never overwritten
my $cur = $node->safe_psql('postgres',
	"INSERT INTO walvault_filler VALUES (1); SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
open(my $fh, '>', "$archive/$cur") or die $!;
print $fh "not this segment";
close $fh;
my $failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->poll_query_until('postgres',
	"SELECT failed_count > $failed AND last_error LIKE '%already exists with different content%' FROM pg_stat_walvault")
  or die 'conflict not reported';
is(slurp_file("$archive/$cur"), 'not this segment',
	'the existing archive file was not overwritten');
ok((grep { $_ eq $cur } ready_files($node)), 'the segment stays ready');

# the same content is success (the server asks again after a crash)
copy($node->data_dir . "/pg_wal/$cur", "$archive/$cur") or die $!;
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
wait_all_archived($node);
ok(1, 'an identical file already in the archive counts as archived');

# not a directory, and a relative path, at reload
my $file = $node->basedir . '/plainfile';
open($fh, '>', $file) or die $!;
close $fh;
my $offset = -s $node->logfile;
set_archive_directory($node, $file);
$node->wait_for_log(
	qr/pg_walvault.archive_directory "\Q$file\E" is not usable: not a directory/,
	$offset);
ok(1, 'a file instead of a directory is a warning at reload');
$offset = -s $node->logfile;
set_archive_directory($node, 'relative/dir');
$node->wait_for_log(qr/pg_walvault.archive_directory must be an absolute path/,
	$offset);
is($node->safe_psql('postgres', 'SHOW pg_walvault.archive_directory'),
	$file, 'a relative path is refused and the previous value kept');

$node->stop;
done_testing();

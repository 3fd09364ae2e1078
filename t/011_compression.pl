# pg_walvault.compression: workers store each file compressed with zstd, lz4
# or gzip under the method's suffix; pg_walvault_restore gives back the
# original bytes; a file the server asks for again is found under any name,
# compressed or not, and compared by its content; bad settings are refused
# with a clear message and the previous setting kept.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Compare;
use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $node = walvault_node('compression', hold => 1,
	conf => "pg_walvault.max_workers = 2\npg_walvault.compression = 'zstd:1'\n");
my $archive = $node->{walvault_archive};
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
my $restore_dir = $node->basedir . '/restored';
mkdir $restore_dir or die $!;

# Archive a fresh backlog, then check every file is stored with suffix and
# restores byte-identical.
sub archive_and_check
{
	my ($suffix, $label) = @_;
	make_segments($node, 4);
	my ($snap, @ready) = snapshot_ready($node);
	my $before = $node->safe_psql('postgres',
		'SELECT archived_count FROM pg_stat_walvault');
	set_archive_directory($node, $archive);
	wait_all_archived($node);

	my @bad;
	for my $f (@ready)
	{
		my $stored = "$archive/$f$suffix";
		if (!-f $stored) { push @bad, "$f$suffix missing"; next; }
		push @bad, "$f also stored uncompressed" if $suffix ne '' && -e "$archive/$f";
		my $mode = (stat $stored)[2] & 07777;
		push @bad, sprintf("%s has mode %o", $stored, $mode) if $mode != 0600;
		unlink "$restore_dir/$f";
		my ($stdout, $stderr);
		IPC::Run::run([ 'pg_walvault_restore', '-d', $archive, $f, "$restore_dir/$f" ],
			'>', \$stdout, '2>', \$stderr)
		  or push @bad, "$f: restore failed: $stderr";
		push @bad, "$f restores different bytes"
		  if compare("$restore_dir/$f", "$snap/$f") != 0;
	}
	is(join(', ', @bad), '', "$label: " . scalar(@ready) . " files stored as *$suffix, mode 0600, restored byte-identical");
	cmp_ok($node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault'),
		'>=', $before + scalar(@ready), "$label: archived_count counts them");

	# hold again for the next round
	set_archive_directory($node, '');
	return @ready;
}

my @zstd = archive_and_check('.zst', 'zstd:1');

# WAL of md5 text compresses: the history's stored bytes show it
$node->safe_psql('postgres', 'SELECT pg_stat_walvault_reset()');
$node->append_conf('postgresql.conf', "pg_walvault.stats_interval = '100ms'");
$node->reload;

$node->append_conf('postgresql.conf', "pg_walvault.compression = 'lz4'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('pg_walvault.compression') = 'lz4'")
  or die 'lz4 not set';
my @lz4 = archive_and_check('.lz4', 'lz4 after a reload');
$node->poll_query_until('postgres',
	"SELECT sum(archived_bytes) > 0 FROM pg_stat_walvault_history")
  or die 'no history sample with archived bytes';
ok( $node->poll_query_until('postgres',
		"SELECT sum(stored_bytes) < sum(archived_bytes) FROM pg_stat_walvault_history WHERE archived_bytes > 0"),
	'stored_bytes is smaller than archived_bytes with compression');

$node->append_conf('postgresql.conf', "pg_walvault.compression = 'gzip:level=1'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('pg_walvault.compression') = 'gzip:level=1'")
  or die 'gzip not set';
my @gzip = archive_and_check('.gz', 'gzip:level=1');

$node->append_conf('postgresql.conf', "pg_walvault.compression = off");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('pg_walvault.compression') = 'off'")
  or die 'off not set';
archive_and_check('', 'off');

# The server asks again for files already archived (as after a crash before
# .done was written): identical content under any name is success, and no
# second copy is made, whatever the setting now.
set_archive_directory($node, $archive);
my $status = $node->data_dir . '/pg_wal/archive_status';
my @again = ($zstd[0], $lz4[0], $gzip[0]);
my $archived = $node->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_walvault');
for my $f (@again)
{
	rename("$status/$f.done", "$status/$f.ready") or die "rename $f: $!";
}
make_segments($node, 1);    # a new ready file wakes the archiver
wait_all_archived($node);
is( $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	'0', 'identical compressed copies count as archived, no failure');
is(join(',', grep { -e "$archive/$_" } @again), '', 'no uncompressed second copy was made');

# A compressed copy that differs (here: truncated) is an error, never
# overwritten; the file stays ready until it is fixed.
my $victim = "$archive/$lz4[1].lz4";
copy($victim, "$victim.good") or die $!;
truncate($victim, 100) or die $!;
rename("$status/$lz4[1].done", "$status/$lz4[1].ready") or die $!;
make_segments($node, 1);
$node->poll_query_until('postgres',
	"SELECT failed_count > 0 AND last_error LIKE '%already exists with different content%' FROM pg_stat_walvault")
  or die 'different compressed copy not reported';
ok(1, 'a different compressed copy is reported as different content');
ok($node->log_contains(qr/archived copy ".*\.lz4" is truncated/),
	'the log says why the copy differs');
is(-s $victim, 100, 'the different copy is not overwritten');
ok((grep { $_ eq $lz4[1] } ready_files($node)), 'the WAL file is kept ready');

# the same for a copy that is not lz4 at all
my $failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
open(my $fh, '>', $victim) or die $!;
print $fh 'not an lz4 frame' x 10;
close $fh;
make_segments($node, 1);
$node->poll_query_until('postgres',
	"SELECT failed_count > $failed FROM pg_stat_walvault")
  or die 'undecodable copy not reported';
ok($node->log_contains(qr/archived copy ".*\.lz4" cannot be decompressed with lz4: /),
	'a copy that does not decompress is reported as such');
is(-s $victim, 160, 'the undecodable copy is not overwritten');

# and for a valid lz4 file that holds another segment
$failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
copy("$archive/$lz4[2].lz4", $victim) or die $!;
make_segments($node, 1);
$node->poll_query_until('postgres',
	"SELECT failed_count > $failed AND last_error LIKE '%$lz4[1].lz4\" already exists with different content' FROM pg_stat_walvault")
  or die 'copy of another segment not reported';
ok(1, 'a compressed copy of other content is reported as different');
rename("$victim.good", $victim) or die $!;
wait_all_archived($node);
ok(1, 'archived once the copy in the archive is right again');

# Bad settings: refused at reload with the reason, the old value kept.
$node->append_conf('postgresql.conf', "pg_walvault.compression = 'lz4'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('pg_walvault.compression') = 'lz4'")
  or die 'lz4 not set';
my @bad = (
	[ 'brotli', qr/unrecognized compression method "brotli"/ ],
	[ 'zstd:level=99', qr/invalid pg_walvault.compression "zstd:level=99".*\n.*DETAIL:  compression algorithm "zstd" expects a compression level between/ ],
	[ 'gzip:fast', qr/DETAIL:  unrecognized compression option: "fast"/ ],
	[ 'zstd:workers=2', qr/DETAIL:  compression option "workers" is not supported/ ],
	[ 'off:1', qr/unrecognized compression method "off"/ ],
);
for my $case (@bad)
{
	my ($value, $re) = @$case;
	my $offset = -s $node->logfile;
	$node->append_conf('postgresql.conf', "pg_walvault.compression = '$value'");
	$node->reload;
	$node->wait_for_log($re, $offset);
	ok(1, "'$value' is refused with its reason");
}
is($node->safe_psql('postgres', 'SHOW pg_walvault.compression'), 'lz4',
	'the previous setting stays in force');

$node->stop;
done_testing();

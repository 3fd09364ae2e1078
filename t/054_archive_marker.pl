# The archive's marker (issue 14, finding 3): "not in the archive" is only
# said of an archive that is there.
#
# The module writes the marker, with the system identifier, before the
# first file it archives into a directory, and refuses the archive of
# another system.  pg_walvault_restore says "not found" (exit 1) only when
# the marker is there and names the data directory's system; otherwise --
# an unmounted (empty) archive, a marker of another system, a dangling
# symbolic link where a file should be -- it fails with 255, which stops
# recovery instead of ending it.  A PITR that meets a dangling link stops,
# and goes on to the end once the file is back.
use strict;
use warnings;
use File::Copy;
use File::Path qw(make_path);
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RestoreTest;
use Test::More;
use Time::HiRes qw(usleep);
use WalvaultTest;

my $FATAL = 255;
my $prog = 'pg_walvault_restore';
my $MISSING = '0000000100000000000000F0';

my $node = walvault_node('primary');
$node->start;
$node->safe_psql('postgres', 'CREATE TABLE t (i int, t text)');
$node->backup('base');
for my $i (1 .. 8)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, md5(g::text) FROM generate_series($i * 1000, $i * 1000 + 999) g; SELECT pg_switch_wal()"
	);
}
my $expected = $node->safe_psql('postgres',
	"SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t");
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
wait_all_archived($node);
my $sysid = $node->safe_psql('postgres',
	'SELECT system_identifier FROM pg_control_system()');
my $archive = $node->{walvault_archive};
my $marker = "$archive/pg_walvault.archive";

# --- the module writes the marker -----------------------------------------

ok(-f $marker, 'the archive directory carries a marker');
like(slurp_file($marker), qr/^system_identifier = $sysid$/m,
	'the marker names the system identifier of the server');
is((stat $marker)[2] & 07777, 0600, 'the marker has mode 0600');
my @temps = grep { /^\./ && !/^\.\.?$/ } do
{
	opendir(my $dh, $archive) or die;
	readdir($dh);
};
is("@temps", '', 'no temporary file left beside it');

# --- the restore program ---------------------------------------------------

# The program runs in a copy of the data directory's identity: PG_VERSION
# and global/pg_control tell it the version and system identifier.
my $tempdir = File::Spec->rel2abs(PostgreSQL::Test::Utils::tempdir);
my $data = "$tempdir/data";
make_path("$data/global", "$data/pg_wal");
copy($node->data_dir . '/PG_VERSION', "$data/PG_VERSION") or die;
copy($node->data_dir . '/global/pg_control', "$data/global/pg_control")
  or die;

sub run_restore
{
	my (@args) = @_;
	my ($out, $err) = ('', '');

	print("# Running: $prog " . join(' ', @args) . "\n");
	IPC::Run::run([ $prog, @args ],
		'>', \$out, '2>', \$err, init => sub { chdir $data or die; });
	my $status = $?;
	die "$prog was killed by signal " . ($status & 127) if $status & 127;
	print "# stderr:\n$err" =~ s/^/# /mgr if $err ne '';
	return ($status >> 8, $err);
}

my ($rc, $err) = run_restore('-d', $archive, $MISSING, 'pg_wal/RECOVERYXLOG');
is($rc, 1, 'a file missing from a marked archive: not found (1)');

my $saved = slurp_file($marker);
unlink $marker or die;
($rc, $err) = run_restore('-d', $archive, $MISSING, 'pg_wal/RECOVERYXLOG');
is($rc, $FATAL, 'without the marker, a missing file is an error (255)');
like(
	$err,
	qr/^pg_walvault_restore: error: archive directory ".*archive" has no archive marker "pg_walvault.archive": it is not a pg_walvault archive, or it is not mounted or reachable$/m,
	'the error says the marker is missing');
like($err, qr/^pg_walvault_restore: hint: .*--no-marker-check/m,
	'the hint names the option for older archives');

my @segments = grep { /^[0-9A-F]{24}$/ } archive_files($archive);
($rc, $err) =
  run_restore('-d', $archive, $segments[0], 'pg_wal/RECOVERYXLOG');
is($rc, 0, 'a file that is there is restored without a marker');

($rc, $err) = run_restore('--no-marker-check', '-d', $archive, $MISSING,
	'pg_wal/RECOVERYXLOG');
is($rc, 1, '--no-marker-check: not found (1), as before markers');

my $empty = "$tempdir/not_mounted";
mkdir $empty or die;
($rc, $err) = run_restore('-d', $empty, $MISSING, 'pg_wal/RECOVERYXLOG');
is($rc, $FATAL, 'an empty directory (nothing mounted): error, not "not found"');

write_marker($archive, 7000000000000000123);
($rc, $err) = run_restore('-d', $archive, $MISSING, 'pg_wal/RECOVERYXLOG');
is($rc, $FATAL, 'a marker of another system: error');
like(
	$err,
	qr/belongs to another database system: its marker names system identifier 7000000000000000123, the data directory's is $sysid/,
	'the error names both system identifiers');

write_file($marker, "system_identifier = twelve\n");
($rc, $err) = run_restore('-d', $archive, $MISSING, 'pg_wal/RECOVERYXLOG');
is($rc, $FATAL, 'a marker that cannot be read: error');
like($err, qr/archive marker ".*pg_walvault.archive" is not valid/,
	'the error says the marker is not valid');
write_file($marker, $saved);

# A dangling symbolic link: the file is archived, in storage not mounted.
symlink("$tempdir/tier2/$MISSING", "$archive/$MISSING") or die;
($rc, $err) = run_restore('-d', $archive, $MISSING, 'pg_wal/RECOVERYXLOG');
is($rc, $FATAL, 'a dangling symbolic link: error, not "not found"');
like(
	$err,
	qr/could not open file ".*\/$MISSING": it is a symbolic link to ".*tier2\/$MISSING", which does not exist/,
	'the error names the link and where it leads');
unlink "$archive/$MISSING" or die;

# --- the module refuses another system's archive ----------------------------

my $other = walvault_node('other', archive_dir => $archive);
$other->start;
$other->safe_psql('postgres', 'SELECT pg_switch_wal()');
make_segments($other, 1);
$other->wait_for_log(
	qr/archive marker ".*pg_walvault.archive" belongs to another database system/
);
like(
	slurp_file($other->logfile),
	qr/DETAIL:  Its marker names system identifier $sysid; this server's is \d+\.\n.*HINT:  Archive each database system to a location of its own/,
	'the server says whose archive it is, and what to do');
is($other->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_archiver'),
	'0', 'the other system archived nothing');
$other->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
like(
	$other->safe_psql('postgres', 'SELECT last_error FROM pg_stat_walvault'),
	qr/belongs to another database system/,
	'pg_stat_walvault shows why');
$other->stop('immediate');
like(slurp_file($marker), qr/^system_identifier = $sysid$/m,
	'the marker was not replaced');

$node->stop;

# --- a PITR meets a dangling link: it stops, not promotes -------------------

my $middle = $segments[-4];
my $tier = "$tempdir/tier";
mkdir $tier or die;
move("$archive/$middle", "$tier/$middle") or die;
symlink("$tempdir/tier_not_mounted/$middle", "$archive/$middle") or die;

my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'base');
my $go = $restored->basedir . '/go';
# its request for the linked segment waits until the start is through
my $cmd =
  qq{sh -c 'if [ "\$1" = "$middle" ]; then while [ ! -e "$go" ]; do sleep 0.1; done; fi; exec pg_walvault_restore -d "$archive" "\$1" "\$2"' restore %f %p};
$cmd =~ s/'/''/g;
$restored->append_conf('postgresql.conf', qq{
archive_mode = off
restore_command = '$cmd'
});
open(my $fh, '>', $restored->data_dir . '/recovery.signal') or die $!;
close $fh;
$restored->start;
open($fh, '>', $go) or die $!;
close $fh;
$restored->wait_for_log(
	qr/FATAL: .*could not restore file "$middle" from archive: child process exited with exit code 255/
);
my $pidfile = $restored->data_dir . '/postmaster.pid';
ok(wait_until(sub { !-e $pidfile }), 'recovery stopped at the dangling link');
$restored->stop('fast', fail_ok => 1);
my $log = slurp_file($restored->logfile);
like($log, qr/it is a symbolic link to/, 'the log says why');
unlike($log, qr/archive recovery complete/, 'recovery did not complete');
unlike($log, qr/selected new timeline ID/, 'no new timeline');

# the storage is back: recovery goes on to the end of the archive
unlink "$archive/$middle" or die;
move("$tier/$middle", "$archive/$middle") or die;
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'recovery did not finish';
is( $restored->safe_psql('postgres',
		"SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t"),
	$expected,
	'with the file back, recovery reaches the end of the archive');
$restored->stop;

done_testing();

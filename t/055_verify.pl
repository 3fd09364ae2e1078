# pg_walvault_restore --verify and pg_walvault_verify(): a real archive,
# then copies of it damaged one way each, all found.
#
# A primary archives segments plain, then with zstd, lz4 and gzip (the
# compression changed by reloads), takes a base backup (its .backup file is
# archived), and stops; a cluster restored from the backup and the archive
# ends recovery on timeline 2 and archives 00000002.history and its own
# segments into the same archive.  That archive is clean (exit 0, one
# summary line saying so), also for pg_walvault_verify().  Then each copy
# of it is damaged once: two segments removed (a gap, reported as a range,
# and the backup no longer restorable), a byte changed inside a record of a
# plain, a zstd, an lz4 and a gzip segment (the content changed, then
# compressed again: only the checks of the content can tell), a gzip file
# changed as stored, a segment of another cluster under one of our names,
# a history file whose switch point the parent timeline does not have, a
# timeline without its history file.  -j 4 and -j 1 give the same report;
# the SQL function gives the same rows as the program; statement_timeout
# cancels it while a worker is stuck on a FIFO, and no process of it is
# left.  On a real object store (Ceph RGW, t/S3Test.pm), one clean and one
# damaged copy.
use strict;
use warnings;
use File::Copy;
use File::Path qw(make_path);
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;
use S3Test;

my $prog = 'pg_walvault_restore';

###
### The archive: plain, zstd, lz4 and gzip files, a backup, two timelines
###
my $node = walvault_node('primary', conf => "pg_walvault.max_workers = 2\n");
my $archive = $node->{walvault_archive};
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

my %suffix_of = (off => '', zstd => '.zst', lz4 => '.lz4', gzip => '.gz');
my %made;    # suffix => segments made while it was the compression
foreach my $method (qw(off zstd lz4 gzip))
{
	$node->append_conf('postgresql.conf',
		"pg_walvault.compression = '$method'");
	$node->reload;
	$node->poll_query_until('postgres',
		"SELECT setting = '$method' FROM pg_settings WHERE name = 'pg_walvault.compression'"
	) or die "compression $method not in effect";
	my $before = $node->safe_psql('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn())');
	make_segments($node, 3);
	wait_all_archived($node);
	# the segments wholly written by make_segments: the first after $before
	push @{ $made{ $suffix_of{$method} } }, grep { $_ gt $before }
	  map { s/\.(zst|lz4|gz)$//r }
	  grep { /^[0-9A-F]{24}\Q$suffix_of{$method}\E$/ } archive_files($archive);
}
# the backup, its .backup file and timeline 2's files stored as they are
$node->append_conf('postgresql.conf', "pg_walvault.compression = 'off'");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT setting = 'off' FROM pg_settings WHERE name = 'pg_walvault.compression'")
  or die 'compression off not in effect';
$node->backup('base');
make_segments($node, 4);
wait_all_archived($node);
$node->stop;

my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init_from_backup($node, 'base');
$restored->append_conf(
	'postgresql.conf', qq{
restore_command = '$prog -d "$archive" %f %p'
});
open(my $fh, '>', $restored->data_dir . '/recovery.signal') or die $!;
close $fh;
$restored->start;
$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'recovery did not finish';
make_segments($restored, 2);
wait_all_archived($restored);
ok(-f "$archive/00000002.history", 'timeline 2 archived its history file');
my @backups = grep { /\.backup$/ } archive_files($archive);
is(scalar(@backups), 1, 'the base backup left a .backup file');

my $pgdata = $restored->data_dir;

# Run the program; returns exit code, stdout, stderr.
sub run_prog
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	print("# Running: $prog " . join(' ', @args) . "\n");
	IPC::Run::run([ $prog, @args ], '>', \$out, '2>', \$err);
	die "$prog was killed by signal " . ($? & 127) if $? & 127;
	print "# stderr:\n$err" =~ s/^/# /mgr if $err ne '';
	return ($? >> 8, $out, $err);
}

sub verify
{
	my ($dir, @extra) = @_;
	return run_prog('--verify', '-d', $dir, @extra);
}

# Poll $cond every 100 ms until it is true; false after the test timeout.
sub wait_for
{
	my ($cond) = @_;
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		return 1 if $cond->();
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

sub summary
{
	my ($out) = @_;
	my @lines = split /\n/, $out;
	return $lines[-1] // '';
}

###
### A clean archive
###
{
	my ($rc, $out) = verify($archive, '-D', $pgdata);
	is($rc, 0, 'clean archive: exit 0');
	like(summary($out),
		qr/^pg_walvault verify: status=clean marker=present timelines=2 .* backups=1 restorable=1 gaps=0 missing_segments=0 bad=0 unreadable=0 other_system=0 broken_histories=0 /,
		'clean archive: the summary line says clean');
	like($out, qr/^timeline 1: 0{7}1[0-9A-F]{16} to [0-9A-F]{24}: ok /m,
		'timeline 1 with its first and last segment');
	like($out, qr/^timeline 2: [0-9A-F]{24} to [0-9A-F]{24}: ok /m, 'timeline 2');
	like($out, qr/^timeline 2: history 00000002\.history: chains \(parent timeline 1, /m,
		'the history file chains');
	like($out, qr/^timeline 1: backup [0-9A-F]{24}: restorable /m,
		'the base backup is restorable');

	# without its marker, a restore stops at the end of the archive
	# (t/054): a problem, unless restores go without the check
	rename("$archive/pg_walvault.archive", "$archive/../marker.saved") or die;
	($rc, $out) = verify($archive, '-D', $pgdata);
	is($rc, 1, 'no marker: exit 1');
	like(summary($out), qr/^pg_walvault verify: status=problems marker=absent /,
		'no marker: the summary says so');
	like($out, qr/^marker pg_walvault\.archive: absent /m,
		'no marker: a line says what it means');
	($rc, $out) = verify($archive, '-D', $pgdata, '--no-marker-check');
	is($rc, 0, 'no marker, --no-marker-check: exit 0');
	like(summary($out), qr/^pg_walvault verify: status=clean marker=absent /,
		'no marker, --no-marker-check: clean');
	rename("$archive/../marker.saved", "$archive/pg_walvault.archive") or die;
	for my $s ('.zst', '.lz4', '.gz', '')
	{
		ok(scalar(@{ $made{$s} // [] }) >= 2,
			"the archive has segments stored as *$s");
	}

	# without a data directory: the system most segments are of
	($rc, $out) = verify($archive);
	is($rc, 0, 'clean archive, no data directory: exit 0');
	like($out, qr/system identifier \d+, the one \d+ of the \d+ segments/,
		'without -D, the system identifier is the one most segments have');

	($rc, $out) = verify("$archive/no-such-dir");
	cmp_ok($rc, '>', 1, 'an archive that is not there: exit above 1');
	like(`$prog --help`, qr/--verify/, '--help shows --verify');
}

# A copy of the archive to damage.
my $ncopy = 0;
sub copy_archive
{
	my $dir = $node->basedir . '/copy' . ++$ncopy;
	make_path($dir);
	copy("$archive/$_", "$dir/$_") or die "copy $_: $!"
	  for (archive_files($archive), 'pg_walvault.archive');
	return $dir;
}

# Change 8 bytes at offset 200 of a segment's content (inside the first
# records: make_segments starts each segment with a new record), compressed
# again with the same method if it is stored compressed.
my %tool = (
	'.zst' => [ [ 'zstd', '-d', '-q', '-c' ], [ 'zstd', '-q', '-c' ] ],
	'.lz4' => [ [ 'lz4', '-d', '-q', '-c' ], [ 'lz4', '-q', '-c' ] ],
	'.gz' => [ [ 'gzip', '-d', '-c' ], [ 'gzip', '-n', '-c' ] ]);

sub flip_content
{
	my ($path, $suffix) = @_;
	my $content;
	if ($suffix eq '')
	{
		$content = slurp_file($path);
	}
	else
	{
		IPC::Run::run($tool{$suffix}[0], '<', $path, '>', \$content)
		  or die "could not decompress $path";
	}
	substr($content, 200, 8) = substr($content, 200, 8) ^ ("\xff" x 8);
	if ($suffix eq '')
	{
		open(my $out, '>', $path) or die $!;
		binmode $out;
		print $out $content;
		close $out;
	}
	else
	{
		IPC::Run::run($tool{$suffix}[1], '<', \$content, '>', $path)
		  or die "could not compress $path";
	}
	return;
}

my ($plain_seg, $zst_seg, $lz4_seg, $gz_seg, $gz_seg2) =
  ($made{''}[1], $made{'.zst'}[1], $made{'.lz4'}[1], $made{'.gz'}[0],
	$made{'.gz'}[1]);

###
### A gap: two segments after the backup's start removed
###
# the second and third segments after the backup's start
my $damaged = copy_archive();
my $backup_start = substr($backups[0], 0, 24);
my @after = grep { /^00000001[0-9A-F]{16}$/ && $_ gt $backup_start } archive_files($damaged);
my ($gap1, $gap2) = @after[ 0, 1 ];
unlink("$damaged/$gap1", "$damaged/$gap2") == 2 or die;
{
	my ($rc, $out) = verify($damaged, '-D', $pgdata);
	is($rc, 1, 'gap: exit 1');
	like($out, qr/^timeline 1: gap $gap1 to $gap2: missing \(2 segments\)$/m,
		'gap: reported as a range');
	like($out, qr/^timeline 1: backup [0-9A-F]{24}: not-restorable \(.*segment $gap1 is missing\)$/m,
		'gap: the backup is no longer restorable');
	like(summary($out), qr/status=problems .* restorable=0 gaps=1 missing_segments=2 /,
		'gap: summary');
}

###
### A changed byte in a plain, a zstd, an lz4 and a gzip segment; a gzip
### file changed as stored
###
flip_content("$damaged/$plain_seg", '');
flip_content("$damaged/$zst_seg.zst", '.zst');
flip_content("$damaged/$lz4_seg.lz4", '.lz4');
flip_content("$damaged/$gz_seg.gz", '.gz');
{
	my $path = "$damaged/$gz_seg2.gz";
	my $bytes = slurp_file($path);
	substr($bytes, length($bytes) / 2, 1) ^= "\x55";
	open(my $out, '>', $path) or die $!;
	binmode $out;
	print $out $bytes;
	close $out;
}

###
### A segment of another cluster, under one of our names
###
my $other = PostgreSQL::Test::Cluster->new('other');
$other->init(extra => ['--wal-segsize=1']);
$other->start;
# A complete segment of it, under the name of the backup's start segment:
# the next one is in the gap, so that the check of no other segment reads
# it (records that cross into a segment are checked with its predecessor).
# Both clusters start at the segment after those initdb recycled; the
# other switches until it reaches that name.
my %changed = map { $_ => 1 } ($plain_seg, $zst_seg, $lz4_seg, $gz_seg, $gz_seg2);
die 'the backup starts on a changed segment' if $changed{$backup_start};
my $other_seg;
for (1 .. 200)
{
	$other->safe_psql('postgres',
		'CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t VALUES (1); SELECT pg_switch_wal()');
	$other_seg = $other->safe_psql('postgres',
		'SELECT pg_walfile_name(pg_current_wal_lsn())');
	last if $other_seg ge $backup_start;
}
die "the other cluster is at $other_seg, past $backup_start" if $other_seg ne $backup_start;
$other->safe_psql('postgres',
	'INSERT INTO t VALUES (2); SELECT pg_switch_wal()');
copy($other->data_dir . "/pg_wal/$other_seg", "$damaged/$other_seg.tmp") or die $!;
$other->stop;
unlink "$damaged/$other_seg", "$damaged/$other_seg.zst", "$damaged/$other_seg.lz4",
  "$damaged/$other_seg.gz";
rename("$damaged/$other_seg.tmp", "$damaged/$other_seg") or die $!;

my ($rc_j1, $out_j1);
{
	my ($rc, $out) = verify($damaged, '-D', $pgdata, '-j', '4');
	($rc_j1, $out_j1) = verify($damaged, '-D', $pgdata, '-j', '1');
	is($rc, 1, 'damaged: exit 1');
	for my $c ([ $plain_seg, '' ], [ $zst_seg, '.zst' ], [ $lz4_seg, '.lz4' ],
		[ $gz_seg, '.gz' ], [ $gz_seg2, '.gz' ])
	{
		my ($seg, $s) = @$c;
		like($out, qr/^timeline 1: segment \Q$seg$s\E: bad \(.+\)$/m,
			"a changed byte in $seg$s is found");
	}
	like($out, qr/^timeline 1: segment $other_seg: other-system \(WAL of database system \d+, not \d+\)$/m,
		'a segment of another system is found (-D)');
	like(summary($out), qr/status=problems .* bad=5 unreadable=0 other_system=1 /,
		'damaged: summary');
	is($out, $out_j1, '-j 4 and -j 1 give the same report');
	is($rc_j1, $rc, '-j 4 and -j 1 give the same exit status');

	# without -D: the other system is the minority
	($rc, $out) = verify($damaged);
	like($out, qr/^timeline 1: segment $other_seg: other-system /m,
		'a segment of another system is found (majority)');
}

###
### History files that do not chain
###
{
	my $dir = copy_archive();
	my $h = slurp_file("$dir/00000002.history");
	$h =~ s/^1\t[0-9A-F]+\/[0-9A-F]+/1\t0\/FF000000/m or die "history: $h";
	open(my $out, '>', "$dir/00000002.history") or die $!;
	print $out $h;
	close $out;
	my ($rc, $report) = verify($dir, '-D', $pgdata);
	is($rc, 1, 'switch point not on the parent: exit 1');
	like($report,
		qr/^timeline 2: history 00000002\.history: broken \(the switch point 0\/FF000000 is on segment 00000001[0-9A-F]{16}, which parent timeline 1 does not have\)$/m,
		'a switch point the parent timeline does not have');

	unlink "$dir/00000002.history" or die;
	($rc, $report) = verify($dir, '-D', $pgdata);
	is($rc, 1, 'no history file: exit 1');
	like($report,
		qr/^timeline 2: history 00000002\.history: broken \(timeline 2 has WAL but no history file/m,
		'a timeline without its history file');
	like(summary($report), qr/broken_histories=1 /, 'broken history: summary');
}

###
### pg_walvault_verify(): the same rows for the configured archive
###
# (CREATE EXTENSION came with the base backup)

sub sql_rows
{
	my ($n) = @_;
	return $n->safe_psql('postgres',
		q{SELECT concat_ws(E'\t', coalesce(timeline::text, ''), kind, coalesce(first_file, ''),
		         coalesce(last_file, ''), coalesce(status, ''), coalesce(detail, ''))
		  FROM pg_walvault_verify()});
}

sub tsv_rows
{
	my ($dir) = @_;
	my ($rc, $out) = verify($dir, '-D', $pgdata, '--format=tsv');
	return join("\n", grep { !/^\tprogress\t/ } split(/\n/, $out));
}

{
	my $rows = sql_rows($restored);
	like($rows, qr/\tsummary\t\t\tclean\tpg_walvault verify: status=clean /,
		'pg_walvault_verify(): the configured archive is clean');
	is($rows, tsv_rows($archive), 'pg_walvault_verify(): the rows of the program');

	set_archive_directory($restored, $damaged);
	$rows = sql_rows($restored);
	like($rows, qr/\tsummary\t\t\tproblems\t/, 'pg_walvault_verify(): damaged archive');
	is($rows, tsv_rows($damaged), 'pg_walvault_verify(): the same rows as the program');

	my ($ret, $stdout, $stderr) = $restored->psql('postgres',
		'SELECT count(*) FROM pg_walvault_verify(jobs => 2, progress => true)');
	like($stderr, qr/NOTICE:  pg_walvault_verify: checked \d+ of \d+ files/,
		'progress => true: NOTICEs');

	# privileges: not PUBLIC, pg_read_server_files
	$restored->safe_psql('postgres',
		'CREATE ROLE nobody LOGIN; CREATE ROLE reader LOGIN IN ROLE pg_read_server_files');
	($ret, $stdout, $stderr) = $restored->psql('postgres',
		'SET ROLE nobody; SELECT count(*) FROM pg_walvault_verify()');
	like($stderr, qr/permission denied for function pg_walvault_verify/,
		'a role without the grant cannot verify');
	($ret, $stdout, $stderr) = $restored->psql('postgres',
		"SET ROLE reader; SELECT count(*) > 0 FROM pg_walvault_verify()");
	is($stdout, 't', 'pg_read_server_files can verify');

	# an archive_command is not verifiable; no archive at all neither
	set_archive_directory($restored, '');
	($ret, $stdout, $stderr) = $restored->psql('postgres',
		'SELECT * FROM pg_walvault_verify()');
	like($stderr, qr/ERROR:  no pg_walvault archive is configured/,
		'no archive configured: error');
	$restored->append_conf('postgresql.conf',
		"pg_walvault.archive_command = 'cp %p /nonexistent/%f'");
	$restored->reload;
	$restored->poll_query_until('postgres',
		"SELECT setting <> '' FROM pg_settings WHERE name = 'pg_walvault.archive_command'");
	($ret, $stdout, $stderr) = $restored->psql('postgres',
		'SELECT * FROM pg_walvault_verify()');
	like($stderr,
		qr/ERROR:  an archive written by pg_walvault.archive_command cannot be verified/,
		'archive_command: error');
	$restored->append_conf('postgresql.conf', "pg_walvault.archive_command = ''");
	$restored->reload;

	# an archive directory that is not there: an error with the program's message
	set_archive_directory($restored, $restored->basedir . '/no-such-archive');
	($ret, $stdout, $stderr) = $restored->psql('postgres',
		'SELECT * FROM pg_walvault_verify()');
	like($stderr, qr/ERROR:  could not verify the archive\nDETAIL:  pg_walvault_restore exited with status \d+: .*no-such-archive/,
		'an archive that is not there: error with the reason');
}

###
### Cancel: statement_timeout while a worker waits on a FIFO
###
{
	my $dir = $restored->basedir . '/hang';
	make_path($dir);
	copy("$archive/$_", "$dir/$_") for grep { /^00000001/ } archive_files($archive);
	system('mkfifo', "$dir/000000030000000000000001") == 0 or die 'mkfifo';
	set_archive_directory($restored, $dir);
	my ($ret, $stdout, $stderr) = $restored->psql('postgres',
		"SET statement_timeout = '3s'; SELECT count(*) FROM pg_walvault_verify(progress => true)");
	like($stderr, qr/canceling statement due to statement timeout/,
		'statement_timeout cancels pg_walvault_verify()');
	my ($pid) = $stderr =~ /running pg_walvault_restore as process (\d+)/;
	ok(defined $pid, 'the child process was named');
	ok(!kill(0, $pid), 'the child process is gone');
	my @left;
	for my $proc (glob('/proc/[0-9]*'))
	{
		my $cmd = eval { slurp_file("$proc/cmdline") } // '';
		push @left, $proc if $cmd =~ /--verify/ && $cmd =~ /\Q$dir\E/;
	}
	is(join(' ', @left), '', 'no worker of it is left');
	is($restored->safe_psql('postgres', 'SELECT 1'), '1', 'the backend goes on');

	# pg_terminate_backend(): a FATAL, which unwinds no PG_TRY, stops it too
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-d', $restored->connstr('postgres'), '-c',
			'SELECT count(*) FROM pg_walvault_verify(progress => true)'
		],
		'>', \$out, '2>', \$err);
	ok( wait_for(sub { $h->pump_nb; $err =~ /running pg_walvault_restore as process (\d+)/ }),
		'terminate: the verify runs');
	($pid) = $err =~ /running pg_walvault_restore as process (\d+)/;
	$restored->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_walvault_verify(progress%' AND pid <> pg_backend_pid()");
	$h->finish;
	ok(wait_for(sub { !kill(0, $pid) }), 'terminate: the child process is gone');
	set_archive_directory($restored, $archive);
}

###
### An object store: one clean and one damaged copy
###
SKIP:
{
	my @missing = S3Test::missing_programs();
	skip 'S3 test server unavailable, missing: ' . join(' ', @missing), 5
	  if @missing && !($ENV{CI} && $ENV{CI} ne 'false' && $ENV{CI} ne '0');
	my $s3 = S3Test->start;
	local $ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
	local $ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
	local $ENV{AWS_SHARED_CREDENTIALS_FILE} = $node->basedir . '/no-credentials';
	my $bucket = $s3->bucket;
	for my $f (archive_files($archive))
	{
		$s3->put_object("clean/$f", "$archive/$f") == 200 or die "upload $f";
	}
	for my $f (archive_files($damaged))
	{
		$s3->put_object("damaged/$f", "$damaged/$f") == 200 or die "upload $f";
	}
	for my $p ('clean', 'damaged')
	{
		$s3->put_object("$p/pg_walvault.archive", "$archive/pg_walvault.archive")
		  == 200 or die 'upload the marker';
	}
	my @store = ('--s3-endpoint', $s3->endpoint, '--s3-uri-style', 'path');

	my ($rc, $out) = run_prog('--verify', '-u', "s3://$bucket/clean", @store,
		'-D', $pgdata);
	is($rc, 0, 'S3, clean: exit 0');
	like(summary($out), qr/status=clean marker=present timelines=2 /, 'S3, clean: summary');

	($rc, $out) = run_prog('--verify', '-u', "s3://$bucket/damaged", @store,
		'-D', $pgdata);
	is($rc, 1, 'S3, damaged: exit 1');
	# the same report as the directory's, but for where the files are
	my $dir_report = $out_j1 =~ s/^pg_walvault verify of .*\n//r
	  =~ s/\Q$damaged\E\///gr;
	is($out =~ s/^pg_walvault verify of .*\n//r =~ s/s3:\/\/\Q$bucket\E\/damaged\///gr,
		$dir_report, 'S3, damaged: the same report as the directory');
	($rc, $out) = run_prog('--verify', '-u', "s3://no-such-bucket-x/damaged",
		@store, '-D', $pgdata);
	cmp_ok($rc, '>', 1, 'S3, a bucket that is not there: exit above 1');
	$s3->stop;
}

$restored->stop;
done_testing();


# Copyright (c) pg_walvault contributors

# Tests for pg_walvault_restore, the restore_command helper.  Every exit path
# of the program is exercised: restored (0), not in the archive (1), and the
# various usage, name, I/O and corruption errors (255, which stops
# recovery).  No server is needed; WAL segments are faked with valid page
# headers on every page.

use strict;
use warnings;

use File::Spec;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Utils;
use RestoreTest;
use Test::More;

my $prog = 'pg_walvault_restore';

# %MAGIC (the WAL page magic of each supported major version) and $MAJOR
# (the version the program under test was built for: the server whose
# bindir is in PATH) come from RestoreTest.
# a tested version other than this one
my ($OTHER) = grep { $_ != $MAJOR } (15, 17, 18);
my ($EXTVERSION) = slurp_file("$FindBin::RealBin/../pg_walvault.control") =~
  /^default_version = '(.*)'/m;

my $SEG_SIZE = 16 * 1024 * 1024;
my $FATAL = 255;

# absolute, because the program runs in another working directory
my $tempdir = File::Spec->rel2abs(PostgreSQL::Test::Utils::tempdir);
my $archive = "$tempdir/archive";
my $srcdir = "$tempdir/src";    # uncompressed inputs for the compressors
my $datadir = "$tempdir/data";  # stands in for the server's data directory
my $dest_dir = "$datadir/pg_wal";
mkdir $archive or die "mkdir $archive: $!";
mkdir $srcdir or die "mkdir $srcdir: $!";
mkdir $datadir or die "mkdir $datadir: $!";
mkdir $dest_dir or die "mkdir $dest_dir: $!";
# the marker pg_walvault writes: "not found" is said only with it (t/054)
write_marker($archive, 7000000000000000060);

# Run the program with the data directory as working directory, like the
# server does.  Returns exit code, stdout and stderr.
sub run_restore
{
	my @args = @_;
	my ($stdout, $stderr) = ('', '');

	print("# Running: $prog " . join(' ', @args) . "\n");
	IPC::Run::run([ $prog, @args ],
		'>', \$stdout, '2>', \$stderr,
		init => sub { chdir $datadir or die "chdir $datadir: $!"; });
	my $status = $?;
	die "$prog was killed by signal " . ($status & 127) if $status & 127;
	return ($status >> 8, $stdout, $stderr);
}

# The same, with the size of the files it may write limited to $blocks of
# 512 bytes (sh's ulimit -f): writing more kills it with SIGXFSZ, which is
# returned as the exit code 128 + 25, as a shell would.
sub run_restore_limited
{
	my ($blocks, @args) = @_;
	my ($stdout, $stderr) = ('', '');

	print("# Running with ulimit -f $blocks: $prog " . join(' ', @args) . "\n");
	IPC::Run::run([ 'sh', '-c', "ulimit -f $blocks; exec \"\$0\" \"\$@\"", $prog, @args ],
		'>', \$stdout, '2>', \$stderr,
		init => sub { chdir $datadir or die "chdir $datadir: $!"; });
	my $status = $?;
	return (128 + ($status & 127), $stdout, $stderr) if $status & 127;
	return ($status >> 8, $stdout, $stderr);
}

# A fake segment of 16 MB (t/RestoreTest.pm) unless told otherwise.
sub segment
{
	return fake_segment(size => $SEG_SIZE, @_);
}

# Look a command-line tool up in PATH.
sub have_tool
{
	my ($tool) = @_;
	foreach my $dir (File::Spec->path())
	{
		return 1 if -x "$dir/$tool" && !-d "$dir/$tool";
	}
	return 0;
}

# Compress $src into $dst with one of the command-line tools.
sub compress_file
{
	my ($tool, $src, $dst) = @_;
	my @cmd =
	    $tool eq 'zstd' ? ('zstd', '-q', '-f', $src, '-o', $dst)
	  : $tool eq 'lz4' ? ('lz4', '-q', '-f', $src, $dst)
	  : $tool eq 'gzip' ? ('gzip', '-n', '-c', $src)
	  : die "unknown compressor $tool";
	my @redirect = $tool eq 'gzip' ? ('>', $dst) : ();
	IPC::Run::run(\@cmd, @redirect)
	  or die "\"@cmd\" failed with status $?";
	return;
}

# Store $content in the archive as $name, compressed with $tool, and return
# the path of the compressed file.
sub archive_compressed
{
	my ($tool, $name, $content) = @_;
	my %suffix = (zstd => '.zst', lz4 => '.lz4', gzip => '.gz');
	my $src = "$srcdir/$name";
	my $dst = "$archive/$name$suffix{$tool}";
	write_file($src, $content);
	compress_file($tool, $src, $dst);
	unlink $src;
	return $dst;
}

# Check that a failed restore left neither the destination nor the
# temporary file behind.
sub nothing_left_behind
{
	my ($dest, $test_name) = @_;
	ok(!-e "$datadir/$dest", "$test_name: destination not created");
	is(join(' ', temp_files($dest)), '', "$test_name: no temporary file left");
	return;
}

# Temporary files of a destination ("<dest>.<pid>.<nonce>" plus a suffix).
sub temp_files
{
	my ($dest) = @_;
	return glob("$datadir/$dest.*.pg_walvault_restore.tmp");
}

# Restore $name to pg_wal/RECOVERYXLOG and check it matches $expected.
sub restore_ok
{
	my ($name, $expected, $test_name) = @_;
	my $dest = 'pg_wal/RECOVERYXLOG';
	unlink "$datadir/$dest";

	my ($rc, $stdout, $stderr) = run_restore('-d', $archive, $name, $dest);
	is($rc, 0, "$test_name: exit code 0");
	is($stderr, '', "$test_name: nothing on stderr");
	ok(read_file("$datadir/$dest") eq $expected,
		"$test_name: restored file is byte-identical");
	is(join(' ', temp_files($dest)), '', "$test_name: no temporary file left");
	return;
}

# Run a restore that must fail with the fatal exit code and a message.
sub restore_fails
{
	my ($name, $stderr_re, $test_name, @extra) = @_;
	my $dest = 'pg_wal/RECOVERYXLOG';
	unlink "$datadir/$dest";

	my ($rc, $stdout, $stderr) =
	  run_restore('-d', $archive, @extra, $name, $dest);
	is($rc, $FATAL, "$test_name: exit code $FATAL");
	like($stderr, $stderr_re, "$test_name: error message");
	nothing_left_behind($dest, $test_name);
	return;
}

my %have = map { $_ => have_tool($_) } qw(zstd lz4 gzip);

###
### --help, --version and command-line errors
###

program_help_ok($prog);
program_version_ok($prog);

{
	my ($rc, $stdout, $stderr) = run_restore('--help');
	like($stdout, qr/^Usage:\n.*-d DIRECTORY FILE DESTINATION/ms,
		'--help prints usage');
	($rc, $stdout, $stderr) = run_restore('-?');
	is($rc, 0, '-? exit code 0');
	like($stdout, qr/^Usage:/m, '-? prints usage');

	foreach my $opt ('--version', '-V')
	{
		($rc, $stdout, $stderr) = run_restore($opt);
		is($rc, 0, "$opt exit code 0");
		is($stdout, "pg_walvault_restore (pg_walvault) $EXTVERSION\n",
			"$opt prints the version");
	}
}

{
	my ($rc, $stdout, $stderr) =
	  run_restore('000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "missing -d: exit code $FATAL");
	like(
		$stderr,
		qr/^pg_walvault_restore: error: no archive specified: give -d DIRECTORY or -u s3:\/\/BUCKET\/PREFIX$/m,
		'missing -d: error message');
	nothing_left_behind('pg_wal/RECOVERYXLOG', 'missing -d');

	($rc, $stdout, $stderr) =
	  run_restore('-d', $archive, '000000010000000000000001');
	is($rc, $FATAL, "missing destination: exit code $FATAL");
	like($stderr, qr/too few command-line arguments/,
		'missing destination: error message');

	($rc, $stdout, $stderr) =
	  run_restore('-d', $archive, '000000010000000000000001',
		'pg_wal/RECOVERYXLOG', 'extra');
	is($rc, $FATAL, "extra argument: exit code $FATAL");
	like($stderr, qr/too many command-line arguments \(first is "extra"\)/,
		'extra argument: error message');

	($rc, $stdout, $stderr) = run_restore('--no-such-option', '-d',
		$archive, '000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "invalid option: exit code $FATAL");
	like($stderr, qr/Try "pg_walvault_restore --help"/,
		'invalid option: hint');
}

# An archive directory that is a regular file, or does not exist.
write_file("$tempdir/not_a_directory", "x");
{
	my ($rc, $stdout, $stderr) =
	  run_restore('-d', "$tempdir/not_a_directory",
		'000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "-d is a regular file: exit code $FATAL");
	like(
		$stderr,
		qr/^pg_walvault_restore: error: archive directory ".*not_a_directory" is not a directory$/m,
		'-d is a regular file: error message');
	nothing_left_behind('pg_wal/RECOVERYXLOG', '-d is a regular file');

	($rc, $stdout, $stderr) =
	  run_restore('-d', "$tempdir/no_such_directory",
		'000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "-d does not exist: exit code $FATAL");
	like(
		$stderr,
		qr/^pg_walvault_restore: error: could not access archive directory ".*no_such_directory": No such file or directory$/m,
		'-d does not exist: error message');
}

###
### Invalid file names.  Each has a matching file where the program would
### look if it accepted the name, so that accepting it changes the outcome.
###

my $segment1 = segment(seed => 1);

mkdir "$tempdir/etc" or die;
write_file("$tempdir/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
write_file("$archive/00000001000000000000000a", segment(seed => 10));
write_file("$archive/000000010000000000000001.foo", $segment1);
write_file("$archive/000000010000000000000001.HISTORY", "x\n");
write_file("$archive/00000001000000000000001", $segment1);
mkdir "$archive/sub" or die;
write_file("$archive/sub/000000010000000000000001", $segment1);

foreach my $bad_name (
	'../etc/passwd', '00000001000000000000000a',
	'000000010000000000000001.foo', '000000010000000000000001.HISTORY',
	'00000001000000000000001', 'sub/000000010000000000000001',
	'', '0000000G0000000000000001')
{
	restore_fails($bad_name,
		qr/^pg_walvault_restore: error: invalid file name "\Q$bad_name\E"/m,
		"invalid file name \"$bad_name\"");
}

###
### File not in the archive: the normal end of archive recovery.
###

{
	my ($rc, $stdout, $stderr) = run_restore('-d', $archive,
		'0000000100000000000000FF', 'pg_wal/RECOVERYXLOG');
	is($rc, 1, 'missing file: exit code 1');
	is($stderr, '', 'missing file: nothing on stderr');
	is($stdout, '', 'missing file: nothing on stdout');
	nothing_left_behind('pg_wal/RECOVERYXLOG', 'missing file');

	($rc, $stdout, $stderr) = run_restore('-v', '-d', $archive,
		'00000005.history', 'pg_wal/RECOVERYHISTORY');
	is($rc, 1, 'missing history file with -v: exit code 1');
	like(
		$stderr,
		qr/file "00000005.history" not found in archive directory/,
		'missing history file with -v: reported');
	nothing_left_behind('pg_wal/RECOVERYHISTORY', 'missing history file');
}

###
### Successful restores
###

write_file("$archive/000000010000000000000001", $segment1);
restore_ok('000000010000000000000001', $segment1, 'plain segment');

SKIP:
{
	skip 'file modes are not checked on Windows', 1 if $windows_os;
	my $mode = (stat("$datadir/pg_wal/RECOVERYXLOG"))[2] & 07777;
	is(sprintf('%04o', $mode), '0600', 'restored file has mode 0600');
}

# -v, --directory= and an absolute destination
{
	my $dest = "$dest_dir/000000010000000000000001";
	my ($rc, $stdout, $stderr) = run_restore('-v', "--directory=$archive",
		'000000010000000000000001', $dest);
	is($rc, 0, '--directory and -v: exit code 0');
	like(
		$stderr,
		qr/restored ".*000000010000000000000001" from ".*000000010000000000000001" \(uncompressed, 16777216 bytes\)/,
		'-v reports the restore');
	ok(read_file($dest) eq $segment1,
		'--directory and absolute destination: byte-identical');
	unlink $dest;
}

# An existing destination is replaced.
{
	write_file("$dest_dir/RECOVERYXLOG", "old content");
	my ($rc) = run_restore('-d', $archive, '000000010000000000000001',
		'pg_wal/RECOVERYXLOG');
	is($rc, 0, 'existing destination: exit code 0');
	ok(read_file("$dest_dir/RECOVERYXLOG") eq $segment1,
		'existing destination is replaced');
}

# A full-size .partial segment, timeline history and backup history files.
my $partial = segment(name => '000000010000000000000002', seed => 2);
write_file("$archive/000000010000000000000002.partial", $partial);
restore_ok('000000010000000000000002.partial', $partial, 'partial segment');

my $history = "1\t0/3000000\tno recovery target specified\n";
write_file("$archive/00000002.history", $history);
restore_ok('00000002.history', $history, 'timeline history file');

my $backup_history =
    "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
  . "STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n";
write_file("$archive/000000010000000000000002.00000028.backup",
	$backup_history);
restore_ok('000000010000000000000002.00000028.backup',
	$backup_history, 'backup history file');

# Compressed segments
my %suffix_seed = (zstd => 3, lz4 => 4, gzip => 5);
foreach my $tool (qw(zstd lz4 gzip))
{
  SKIP:
	{
		skip "$tool is not installed", 4 unless $have{$tool};
		my $name = sprintf('00000001000000000000000%d', $suffix_seed{$tool});
		my $content = segment(name => $name, seed => $suffix_seed{$tool});
		archive_compressed($tool, $name, $content);
		restore_ok($name, $content, "$tool segment");
	}
}

# Compressed history files made of two concatenated frames or members,
# which the command-line tools accept and so must we.
foreach my $tool (qw(zstd gzip))
{
  SKIP:
	{
		skip "$tool is not installed", 4 unless $have{$tool};
		my %suffix = (zstd => '.zst', gzip => '.gz');
		my $tli = $tool eq 'zstd' ? '00000003' : '00000004';
		my $part1 = "1\t0/3000000\tno recovery target specified\n";
		my $part2 = "2\t0/5000000\tbefore 2024-01-01 00:00:00+00\n";
		my $f1 = archive_compressed($tool, "part1", $part1);
		my $f2 = archive_compressed($tool, "part2", $part2);
		write_file("$archive/$tli.history$suffix{$tool}",
			read_file($f1) . read_file($f2));
		unlink $f1, $f2;
		restore_ok("$tli.history", $part1 . $part2,
			"$tool history file with two frames");
	}
}

###
### Lookup order: FILE, FILE.zst, FILE.lz4, FILE.gz
###

SKIP:
{
	skip 'zstd, lz4 and gzip are needed for the lookup order tests', 12
	  unless $have{zstd} && $have{lz4} && $have{gzip};

	# the same segment in each variant, each with its own content
	my %v;
	for my $n (0x20 .. 0x22)
	{
		my $name = sprintf('0000000100000000000000%02X', $n);
		$v{$n}{$_->[0]} = segment(name => $name, seed => $_->[1])
		  for ([ plain => 20 ], [ zst => 21 ], [ lz4 => 22 ], [ gz => 23 ]);
	}

	write_file("$archive/000000010000000000000020", $v{0x20}{plain});
	archive_compressed('zstd', '000000010000000000000020', $v{0x20}{zst});
	restore_ok('000000010000000000000020', $v{0x20}{plain},
		'plain file preferred over .zst');

	archive_compressed('zstd', '000000010000000000000021', $v{0x21}{zst});
	archive_compressed('lz4', '000000010000000000000021', $v{0x21}{lz4});
	archive_compressed('gzip', '000000010000000000000021', $v{0x21}{gz});
	restore_ok('000000010000000000000021', $v{0x21}{zst},
		'.zst preferred over .lz4 and .gz');

	archive_compressed('lz4', '000000010000000000000022', $v{0x22}{lz4});
	archive_compressed('gzip', '000000010000000000000022', $v{0x22}{gz});
	restore_ok('000000010000000000000022', $v{0x22}{lz4},
		'.lz4 preferred over .gz');
}

###
### Corrupt archive files
###

# An existing destination must survive a failed restore untouched.
SKIP:
{
	skip 'zstd is not installed', 6 unless $have{zstd};

	my $zst = archive_compressed('zstd', '000000010000000000000030',
		segment(name => '000000010000000000000030', seed => 30));
	my $data = read_file($zst);
	write_file($zst, substr($data, 0, int(length($data) / 2)));
	restore_fails('000000010000000000000030',
		qr/^pg_walvault_restore: error: could not decompress file ".*000000010000000000000030\.zst": file is truncated$/m,
		'truncated .zst');

	write_file("$dest_dir/RECOVERYXLOG", "old content");
	my ($rc, $stdout, $stderr) = run_restore('-d', $archive,
		'000000010000000000000030', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "failed restore over existing destination: exit code $FATAL");
	is(read_file("$dest_dir/RECOVERYXLOG"),
		'old content', 'failed restore leaves existing destination alone');
	unlink "$dest_dir/RECOVERYXLOG";
}

SKIP:
{
	skip 'lz4 is not installed', 4 unless $have{lz4};

	my $lz4 = archive_compressed('lz4', '000000010000000000000031',
		segment(name => '000000010000000000000031', seed => 31));
	my $data = read_file($lz4);
	write_file($lz4, substr($data, 0, int(length($data) / 2)));
	restore_fails('000000010000000000000031',
		qr/could not decompress file ".*000000010000000000000031\.lz4"/,
		'truncated .lz4');
}

SKIP:
{
	skip 'gzip is not installed', 8 unless $have{gzip};

	my $gz = archive_compressed('gzip', '000000010000000000000032',
		segment(name => '000000010000000000000032', seed => 32));
	my $data = read_file($gz);
	write_file($gz, substr($data, 0, length($data) - 4));
	restore_fails('000000010000000000000032',
		qr/could not decompress file ".*000000010000000000000032\.gz": file is truncated/,
		'truncated .gz (trailer cut off)');

	# flip the bytes of the CRC in the trailer
	$data = read_file(
		archive_compressed('gzip', '000000010000000000000033',
			segment(name => '000000010000000000000033', seed => 33)));
	substr($data, -8, 4) = ~substr($data, -8, 4);
	write_file("$archive/000000010000000000000033.gz", $data);
	restore_fails('000000010000000000000033',
		qr/could not decompress file ".*000000010000000000000033\.gz": incorrect data check/,
		'.gz with bad CRC');
}

# Files that are not compressed at all, and empty ones.
write_file("$archive/000000010000000000000034.zst", $segment1);
restore_fails('000000010000000000000034',
	qr/could not decompress file ".*000000010000000000000034\.zst": /,
	'.zst that is not zstd data');
write_file("$archive/000000010000000000000035.lz4", $segment1);
restore_fails('000000010000000000000035',
	qr/could not decompress file ".*000000010000000000000035\.lz4": /,
	'.lz4 that is not lz4 data');
write_file("$archive/000000010000000000000036.gz", $segment1);
restore_fails('000000010000000000000036',
	qr/could not decompress file ".*000000010000000000000036\.gz": /,
	'.gz that is not gzip data');
write_file("$archive/000000010000000000000037.zst", '');
restore_fails('000000010000000000000037',
	qr/could not decompress file ".*000000010000000000000037\.zst": file is truncated/,
	'empty .zst');

# Fake segments that do not pass the WAL checks.
write_file("$archive/000000010000000000000040",
	segment(name => '000000010000000000000040', size => 3 * 1024 * 1024));
restore_fails('000000010000000000000040', qr/has invalid size 3145728 bytes/,
	'segment whose size is not a power of two');

write_file("$archive/000000010000000000000041",
	segment(name => '000000010000000000000041', size => 512 * 1024));
restore_fails('000000010000000000000041', qr/has invalid size 524288 bytes/,
	'segment smaller than 1 MB');

write_file("$archive/000000010000000000000042", '');
restore_fails('000000010000000000000042', qr/has invalid size 0 bytes/,
	'empty segment');

write_file("$archive/000000010000000000000043",
	segment(name => '000000010000000000000043', magic => 0xD10D));
restore_fails('000000010000000000000043',
	qr/invalid WAL page magic 0xD10D, expected ${\ sprintf('0x%04X', $MAGIC{$MAJOR}) } for PostgreSQL $MAJOR/,
	'segment with the magic of no supported version');

# Every supported version writes its own WAL format: a segment of another
# version is refused, whichever it is.
write_file("$archive/000000010000000000000048",
	segment(name => '000000010000000000000048', magic => $MAGIC{$OTHER}));
restore_fails('000000010000000000000048',
	qr/is WAL of PostgreSQL $OTHER, but the server is PostgreSQL $MAJOR \(from the server this program was built for\)/,
	'segment of another major version');

# In a data directory, its PG_VERSION says which version asks: the same
# program restores 16's WAL for a 16 server (16 is not tested otherwise).
write_file("$datadir/PG_VERSION", "16\n");
write_file("$archive/000000010000000000000049",
	segment(name => '000000010000000000000049', magic => $MAGIC{16}, seed => 49));
restore_ok('000000010000000000000049', segment(name => '000000010000000000000049', magic => $MAGIC{16}, seed => 49),
	'segment of the version in PG_VERSION');
restore_fails('000000010000000000000048',
	qr/is WAL of PostgreSQL $OTHER, but the server is PostgreSQL 16 \(from PG_VERSION of the data directory\)/,
	'segment of another version than PG_VERSION');
write_file("$datadir/PG_VERSION", "14\n");
restore_fails('000000010000000000000049',
	qr/the data directory is of PostgreSQL 14, which pg_walvault does not support/,
	'data directory of an unsupported version');
unlink "$datadir/PG_VERSION";

# The system identifier in pg_control (its first field) must match the
# segment's: WAL of another cluster archived into the same directory is
# refused.  segment(seed => N) has system identifier 7e18 + N.
mkdir "$datadir/global" or die;
write_file("$datadir/global/pg_control",
	pack('Q<', 7000000000000000000 + 60) . ("\0" x 8184));
write_file("$archive/000000010000000000000060", segment(name => '000000010000000000000060', seed => 60));
restore_ok('000000010000000000000060', segment(name => '000000010000000000000060', seed => 60),
	'segment of this database system');
write_file("$archive/000000010000000000000061", segment(name => '000000010000000000000061', seed => 61));
restore_fails('000000010000000000000061',
	qr/is WAL of database system 7000000000000000061, but the server is database system 7000000000000000060/,
	'segment of another database system');
unlink "$datadir/global/pg_control";
rmdir "$datadir/global";

write_file("$archive/000000010000000000000044", segment(name => '000000010000000000000044', info => 0));
restore_fails('000000010000000000000044',
	qr/does not start with a long WAL page header/,
	'segment without XLP_LONG_HEADER');

write_file("$archive/000000010000000000000045",
	segment(name => '000000010000000000000045', size => 1024 * 1024, seg_size => $SEG_SIZE));
restore_fails('000000010000000000000045',
	qr/has 1048576 bytes, but its page header gives WAL segment size 16777216/,
	'segment whose header gives another size');

write_file("$archive/000000010000000000000046.partial",
	segment(name => '000000010000000000000046', size => $SEG_SIZE + 8192));
restore_fails('000000010000000000000046.partial',
	qr/has invalid size 16785408 bytes/,
	'partial segment of wrong size');

# The size check must also apply to the decompressed content.
SKIP:
{
	skip 'gzip is not installed', 4 unless $have{gzip};
	archive_compressed('gzip', '000000010000000000000047',
		segment(name => '000000010000000000000047', size => 3 * 1024 * 1024));
	restore_fails('000000010000000000000047',
		qr/restored content of ".*000000010000000000000047\.gz" has invalid WAL segment size 3145728 in its page header/,
		'compressed segment of wrong size');
}

###
### I/O errors
###

# The archive entry is a directory.
mkdir "$archive/000000010000000000000050" or die;
restore_fails('000000010000000000000050', qr/is not a regular file/,
	'archive entry is a directory');

# The destination directory does not exist.
{
	my ($rc, $stdout, $stderr) = run_restore('-d', $archive,
		'000000010000000000000001', 'no_such_dir/RECOVERYXLOG');
	is($rc, $FATAL, "destination directory missing: exit code $FATAL");
	like(
		$stderr,
		qr/^pg_walvault_restore: error: could not create file "no_such_dir\/RECOVERYXLOG\.\d+\.[0-9a-f]+\.pg_walvault_restore\.tmp": No such file or directory$/m,
		'destination directory missing: error message');
}

# An archive file that cannot be opened must not be mistaken for a missing
# one.  A symlink loop makes open() fail even for root.
SKIP:
{
	skip 'symlinks are not tested on Windows', 4 if $windows_os;

	symlink('000000010000000000000052', "$archive/000000010000000000000052")
	  or die "could not create symlink: $!";
	restore_fails('000000010000000000000052',
		qr/^pg_walvault_restore: error: could not open file ".*000000010000000000000052": /m,
		'archive file cannot be opened');
}

SKIP:
{
	skip 'permissions are not enforced for root', 4 if $> == 0;
	skip 'permissions work differently on Windows', 4 if $windows_os;

	write_file("$archive/000000010000000000000051", $segment1);
	chmod 0000, "$archive/000000010000000000000051" or die;
	restore_fails('000000010000000000000051',
		qr/could not open file ".*000000010000000000000051": Permission denied/,
		'unreadable archive file');
	chmod 0600, "$archive/000000010000000000000051";
}

###
### Every page of a segment, and the segment's name
###

# A broken page header in the middle of a segment: the server would take it
# for the end of the WAL, finish recovery and promote.
{
	my $name = '000000010000000000000070';
	my $content = segment(name => $name, seed => 70);
	substr($content, 5 * 8192, 2) = "\0\0";
	write_file("$archive/$name", $content);
	restore_fails($name,
		qr/restored content of ".*$name" has invalid WAL page magic 0x0000 at offset 40960/,
		'broken page header in the middle of a segment');

	$content = segment(name => $name, seed => 70);
	substr($content, 7 * 8192 + 8, 8) = pack('Q<', 12345 * 8192);
	write_file("$archive/$name", $content);
	restore_fails($name,
		qr/has WAL location 0\/06072000 in the page header at offset 57344, expected 0\/7000E000/,
		'page of another WAL location in the middle of a segment');

	# the server zeroes the pages after a WAL switch record, to the end
	$content = segment(name => $name, seed => 70, switch_page => 99);
	write_file("$archive/$name", $content);
	restore_ok($name, $content, 'zeroed pages after a WAL switch record');

	# and only there: zeroed pages where WAL records must go on
	my $no_switch = segment(name => $name, seed => 70);
	substr($no_switch, $_ * 8192, 8192) = "\0" x 8192 for 100 .. 2047;
	write_file("$archive/$name", $no_switch);
	restore_fails($name,
		qr/has a zeroed page at offset 819200, but no WAL switch record precedes it/,
		'zeroed pages without a WAL switch record');

	substr($content, 200 * 8192, 24) =
	  substr(segment(name => $name, seed => 70), 200 * 8192, 24);
	write_file("$archive/$name", $content);
	restore_fails($name,
		qr/has a page header at offset 1638400 after zeroed pages/,
		'page header after zeroed pages');
}

# Header fields that no server writes.
{
	my $name = '000000010000000000000078';
	my $c = segment(name => $name, seed => 78);
	my $bad = $c;
	substr($bad, 2, 2) = pack('v', 0x0102);
	write_file("$archive/$name", $bad);
	restore_fails($name, qr/has invalid info bits 0x0102 in its first page header/,
		'first page header with unknown info bits');

	$bad = $c;
	substr($bad, 36, 4) = pack('V', 3000);
	write_file("$archive/$name", $bad);
	restore_fails($name, qr/has invalid WAL page size 3000 in its page header/,
		'first page header with an invalid page size');

	$bad = $c;
	substr($bad, 3 * 8192 + 4, 4) = pack('V', 0);
	write_file("$archive/$name", $bad);
	restore_fails($name,
		qr/has timeline 0 in the page header at offset 24576 \(previous page: 1, file name: 1\)/,
		'page whose timeline goes back');

	# with 16 MB segments, a log file holds segments 00 to FF only
	my $odd = '0000000100000000000001FF';
	write_file("$archive/$odd", segment(name => $name, seed => 78));
	restore_fails($odd,
		qr/has WAL segment size 16777216, which no segment of its name can have/,
		'segment number too large for the segment size');
}

# A segment stored under another segment's name, or another timeline's.
write_file("$archive/000000010000000000000071",
	segment(name => '000000010000000000000072', seed => 71));
restore_fails('000000010000000000000071',
	qr/starts at WAL location 0\/72000000, but its name says 0\/71000000/,
	'segment stored under the name of another segment');
write_file("$archive/000000010000000000000073",
	segment(name => '000000010000000000000073', tli => 2, seed => 73));
restore_fails('000000010000000000000073',
	qr/is WAL of timeline 2, but its name says timeline 1/,
	'segment of a later timeline than its name says');
# the first segment of a new timeline starts with pages of the old one
restore_ok('000000020000000000000074',
	do
	{
		my $c = segment(name => '000000020000000000000074', seed => 74);
		write_file("$archive/000000020000000000000074", $c);
		$c;
	},
	'segment of a new timeline with pages of the previous one');

###
### Bounds: content never exceeds what the file may hold
###

# A gzip bomb named as a timeline history file: 100 MB of zeros in 100 kB.
# With the size of files the program may write limited to 2 MB (ulimit -f),
# it must stop by itself at the 1 MB a history file may have; writing on
# would get it killed by SIGXFSZ.
SKIP:
{
	skip 'gzip is not installed', 5 unless $have{gzip};
	my $bomb = "$srcdir/bomb";
	open(my $fh, '>', $bomb) or die;
	print $fh ("\0" x (1024 * 1024)) for 1 .. 100;
	close $fh;
	IPC::Run::run([ 'gzip', '-1', '-n', '-c', $bomb ],
		'>', "$archive/00000009.history.gz")
	  or die "gzip failed";
	unlink $bomb;
	ok(-s "$archive/00000009.history.gz" < 1024 * 1024,
		'the history bomb is small');
	unlink "$datadir/pg_wal/RECOVERYHISTORY";
	my ($rc, $stdout, $stderr) = run_restore_limited(4096, '-d', $archive,
		'00000009.history', 'pg_wal/RECOVERYHISTORY');
	is($rc, $FATAL, "gzip bomb named as a history file: exit code $FATAL");
	like($stderr,
		qr/restored content of ".*00000009\.history\.gz" exceeds 1048576 bytes, the most a history file may have/,
		'gzip bomb named as a history file: error message');
	nothing_left_behind('pg_wal/RECOVERYHISTORY',
		'gzip bomb named as a history file');
}

# An uncompressed history file over the cap is refused before it is copied.
write_file("$archive/0000000A.history", "x" x (1024 * 1024 + 1));
restore_fails('0000000A.history',
	qr/archive file ".*0000000A\.history" has 1048577 bytes, more than the 1048576 a history file may have/,
	'history file over the cap');

# A segment whose header says 1 MB, followed by 100 MB more: it stops at the
# size its own header states, with 2 MB allowed to be written.
SKIP:
{
	skip 'zstd is not installed', 4 unless $have{zstd};
	my $name = '000000010000000000000075';
	my $src = "$srcdir/$name";
	open(my $fh, '>', $src) or die;
	print $fh segment(name => $name, size => 1024 * 1024, seed => 75);
	print $fh ("\0" x (1024 * 1024)) for 1 .. 100;
	close $fh;
	compress_file('zstd', $src, "$archive/$name.zst");
	unlink $src;
	unlink "$datadir/pg_wal/RECOVERYXLOG";
	my ($rc, $stdout, $stderr) = run_restore_limited(4096, '-d', $archive,
		$name, 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "segment larger than its header says: exit code $FATAL");
	like($stderr,
		qr/restored content of ".*$name\.zst" exceeds the WAL segment size its page header gives \(1048576 bytes\)/,
		'segment larger than its header says: error message');
	nothing_left_behind('pg_wal/RECOVERYXLOG',
		'segment larger than its header says');
}

###
### Two restores to one destination at once write their own temporary files
###

# The first is held after writing its first piece (a test-only hook), the
# second runs to completion meanwhile, then the first finishes: each
# renames a whole file of its own (the last wins), nothing is mixed.
{
	my $fifo = "$tempdir/hold.fifo";
	system('mkfifo', $fifo) == 0 or die "mkfifo failed";
	my $n1 = '000000010000000000000076';
	my $n2 = '000000010000000000000077';
	my $c1 = segment(name => $n1, seed => 76);
	my $c2 = segment(name => $n2, seed => 77);
	write_file("$archive/$n1", $c1);
	write_file("$archive/$n2", $c2);
	unlink "$datadir/pg_wal/RECOVERYXLOG";

	local $ENV{PG_WALVAULT_RESTORE_TEST_HOLD} = "$n1:$fifo";
	my ($out1, $err1) = ('', '');
	my $h = IPC::Run::start([ $prog, '-d', $archive, $n1, 'pg_wal/RECOVERYXLOG' ],
		'>', \$out1, '2>', \$err1,
		init => sub { chdir $datadir or die; });
	open(my $rd, '<', $fifo) or die "open $fifo: $!";
	my $held = <$rd>;
	close $rd;
	my ($pid, $temp) = split ' ', $held;
	ok(-f "$datadir/$temp", 'first restore holds its temporary file');

	my ($rc) = run_restore('-d', $archive, $n2, 'pg_wal/RECOVERYXLOG');
	is($rc, 0, 'second restore to the same destination meanwhile: exit code 0');
	ok(read_file("$dest_dir/RECOVERYXLOG") eq $c2,
		'the second restore put its whole file in place');
	ok(-f "$datadir/$temp", 'the first one\'s temporary file is untouched');

	open(my $wr, '>', $fifo) or die "open $fifo: $!";
	close $wr;
	$h->finish;
	is($h->result(0), 0, 'first restore: exit code 0');
	ok(read_file("$dest_dir/RECOVERYXLOG") eq $c1,
		'then the first put its whole file in place');
	is(join(' ', temp_files('pg_wal/RECOVERYXLOG')), '',
		'no temporary file left');
	unlink $fifo;
}

###
### Options of the prefetcher, and I/O errors on a standby
###

foreach my $bad ([ '-j', '0' ], [ '-j', '65' ], [ '--jobs', 'x' ],
	[ '--idle-timeout', '0' ], [ '--spool-size', '10kB' ],
	[ '--spool-size', '5TB' ])
{
	my ($rc, $stdout, $stderr) = run_restore(@$bad, '-d', $archive,
		'000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL, "@$bad: exit code $FATAL");
	like($stderr, qr/invalid value "\Q$bad->[1]\E" for option/,
		"@$bad: error message");
}

# Outside a server in archive recovery, -j restores directly.
{
	unlink "$dest_dir/RECOVERYXLOG";
	my ($rc, $stdout, $stderr) = run_restore('-v', '-j', '4', '-d', $archive,
		'000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, 0, '-j outside a server: exit code 0');
	like($stderr, qr/not run by a server in archive recovery: no prefetching/,
		'-j outside a server: says it does not prefetch');
	ok(read_file("$dest_dir/RECOVERYXLOG") eq $segment1,
		'-j outside a server: byte-identical');
	ok(!-e "$dest_dir/pg_walvault_spool", '-j outside a server: no spool');
}

# --retry-io-errors turns an I/O error into "not available" on a standby
# only: elsewhere exit 1 would end recovery.  The symlink loop of
# 000000010000000000000052 (above) fails to open.
SKIP:
{
	skip 'symlinks are not tested on Windows', 8 if $windows_os;
	my @args = ('--retry-io-errors', '-d', $archive,
		'000000010000000000000052', 'pg_wal/RECOVERYXLOG');

	my ($rc, $stdout, $stderr) = run_restore(@args);
	is($rc, $FATAL,
		"--retry-io-errors outside standby mode: exit code $FATAL");

	write_file("$datadir/standby.signal", '');
	($rc, $stdout, $stderr) = run_restore(@args);
	is($rc, 1, '--retry-io-errors in standby mode: exit code 1');
	like($stderr, qr/error: could not open file ".*000000010000000000000052"/,
		'--retry-io-errors in standby mode: the error is reported');
	like($stderr, qr/reported as not available \(--retry-io-errors in standby mode\)/,
		'--retry-io-errors in standby mode: says what it does');

	($rc, $stdout, $stderr) = run_restore(@args[ 1 .. $#args ]);
	is($rc, $FATAL, "standby without --retry-io-errors: exit code $FATAL");

	# never for corrupt content
	($rc, $stdout, $stderr) = run_restore('--retry-io-errors', '-d',
		$archive, '000000010000000000000070', 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL,
		"--retry-io-errors in standby mode, corrupt segment: exit code $FATAL");
	unlink "$datadir/standby.signal";
}

done_testing();

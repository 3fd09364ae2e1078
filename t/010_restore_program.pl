
# Copyright (c) pg_walvault contributors

# Tests for pg_walvault_restore, the restore_command helper.  Every exit path
# of the program is exercised: restored (0), not in the archive (1), and the
# various usage, name, I/O and corruption errors (2).  No server is needed;
# WAL segments are faked by writing a valid long page header.

use strict;
use warnings;

use File::Spec;
use FindBin;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $prog = 'pg_walvault_restore';

# The WAL page magic of each supported major version, and the version the
# program under test was built for (the server whose bindir is in PATH).
my %MAGIC = (15 => 0xD110, 16 => 0xD113, 17 => 0xD116, 18 => 0xD118);
my ($MAJOR) = `pg_config --version` =~ /PostgreSQL (\d+)/
  or die 'cannot tell the server version';
# a tested version other than this one
my ($OTHER) = grep { $_ != $MAJOR } (15, 17, 18);
my ($EXTVERSION) = slurp_file("$FindBin::RealBin/../pg_walvault.control") =~
  /^default_version = '(.*)'/m;

my $SEG_SIZE = 16 * 1024 * 1024;
my $TMP_SUFFIX = '.pg_walvault_restore.tmp';

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

# Build the content of a fake WAL segment: a long page header of $MAJOR
# (see XLogLongPageHeaderData in access/xlog_internal.h) followed by a
# pattern that depends on $seed, so that different files differ and a
# restore that mangles or zeroes data is noticed.
sub fake_segment
{
	my (%opt) = @_;
	my $size = $opt{size} // $SEG_SIZE;
	my $magic = $opt{magic} // $MAGIC{$MAJOR};
	my $info = $opt{info} // 0x0002;           # XLP_LONG_HEADER
	my $seg_size = $opt{seg_size} // $size;
	my $seed = $opt{seed} // 1;

	my $header = pack('v v V Q< V x4 Q< V V',
		$magic, $info,
		1,                        # xlp_tli
		0,                        # xlp_pageaddr
		0,                        # xlp_rem_len
		7000000000000000000 + $seed,    # xlp_sysid
		$seg_size,
		8192);                    # xlp_xlog_blcksz
	die "header layout is wrong" unless length($header) == 40;

	my $block = pack('N*',
		map { ($_ * 2654435761 + $seed * 97) % 4294967296 } 0 .. 16383);
	my $body = $block x (int($size / length($block)) + 1);
	return substr($header . $body, 0, $size);
}

sub write_file
{
	my ($path, $content) = @_;
	open my $fh, '>', $path or die "could not open \"$path\": $!";
	binmode $fh;
	print $fh $content or die "could not write \"$path\": $!";
	close $fh or die "could not close \"$path\": $!";
	return;
}

sub read_file
{
	my ($path) = @_;
	open my $fh, '<', $path or die "could not open \"$path\": $!";
	binmode $fh;
	local $/;
	my $content = <$fh>;
	close $fh;
	return $content // '';
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
	ok(!-e "$datadir/$dest$TMP_SUFFIX", "$test_name: no temporary file left");
	return;
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
	ok(!-e "$datadir/$dest$TMP_SUFFIX", "$test_name: no temporary file left");
	return;
}

# Run a restore that must fail with exit code 2 and a message.
sub restore_fails
{
	my ($name, $stderr_re, $test_name, @extra) = @_;
	my $dest = 'pg_wal/RECOVERYXLOG';
	unlink "$datadir/$dest";

	my ($rc, $stdout, $stderr) =
	  run_restore('-d', $archive, @extra, $name, $dest);
	is($rc, 2, "$test_name: exit code 2");
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
	is($rc, 2, 'missing -d: exit code 2');
	like(
		$stderr,
		qr/^pg_walvault_restore: error: no archive directory specified$/m,
		'missing -d: error message');
	nothing_left_behind('pg_wal/RECOVERYXLOG', 'missing -d');

	($rc, $stdout, $stderr) =
	  run_restore('-d', $archive, '000000010000000000000001');
	is($rc, 2, 'missing destination: exit code 2');
	like($stderr, qr/too few command-line arguments/,
		'missing destination: error message');

	($rc, $stdout, $stderr) =
	  run_restore('-d', $archive, '000000010000000000000001',
		'pg_wal/RECOVERYXLOG', 'extra');
	is($rc, 2, 'extra argument: exit code 2');
	like($stderr, qr/too many command-line arguments \(first is "extra"\)/,
		'extra argument: error message');

	($rc, $stdout, $stderr) = run_restore('--no-such-option', '-d',
		$archive, '000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, 2, 'invalid option: exit code 2');
	like($stderr, qr/Try "pg_walvault_restore --help"/,
		'invalid option: hint');
}

# An archive directory that is a regular file, or does not exist.
write_file("$tempdir/not_a_directory", "x");
{
	my ($rc, $stdout, $stderr) =
	  run_restore('-d', "$tempdir/not_a_directory",
		'000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, 2, '-d is a regular file: exit code 2');
	like(
		$stderr,
		qr/^pg_walvault_restore: error: archive directory ".*not_a_directory" is not a directory$/m,
		'-d is a regular file: error message');
	nothing_left_behind('pg_wal/RECOVERYXLOG', '-d is a regular file');

	($rc, $stdout, $stderr) =
	  run_restore('-d', "$tempdir/no_such_directory",
		'000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	is($rc, 2, '-d does not exist: exit code 2');
	like(
		$stderr,
		qr/^pg_walvault_restore: error: could not access archive directory ".*no_such_directory": No such file or directory$/m,
		'-d does not exist: error message');
}

###
### Invalid file names.  Each has a matching file where the program would
### look if it accepted the name, so that accepting it changes the outcome.
###

my $segment1 = fake_segment(seed => 1);

mkdir "$tempdir/etc" or die;
write_file("$tempdir/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
write_file("$archive/00000001000000000000000a", fake_segment(seed => 10));
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
my $partial = fake_segment(seed => 2);
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
		my $content = fake_segment(seed => $suffix_seed{$tool});
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

	my $plain = fake_segment(seed => 20);
	my $zst = fake_segment(seed => 21);
	my $lz4 = fake_segment(seed => 22);
	my $gz = fake_segment(seed => 23);

	write_file("$archive/000000010000000000000020", $plain);
	archive_compressed('zstd', '000000010000000000000020', $zst);
	restore_ok('000000010000000000000020', $plain,
		'plain file preferred over .zst');

	archive_compressed('zstd', '000000010000000000000021', $zst);
	archive_compressed('lz4', '000000010000000000000021', $lz4);
	archive_compressed('gzip', '000000010000000000000021', $gz);
	restore_ok('000000010000000000000021', $zst,
		'.zst preferred over .lz4 and .gz');

	archive_compressed('lz4', '000000010000000000000022', $lz4);
	archive_compressed('gzip', '000000010000000000000022', $gz);
	restore_ok('000000010000000000000022', $lz4, '.lz4 preferred over .gz');
}

###
### Corrupt archive files
###

# An existing destination must survive a failed restore untouched.
SKIP:
{
	skip 'zstd is not installed', 6 unless $have{zstd};

	my $zst = archive_compressed('zstd', '000000010000000000000030',
		fake_segment(seed => 30));
	my $data = read_file($zst);
	write_file($zst, substr($data, 0, int(length($data) / 2)));
	restore_fails('000000010000000000000030',
		qr/^pg_walvault_restore: error: could not decompress file ".*000000010000000000000030\.zst": file is truncated$/m,
		'truncated .zst');

	write_file("$dest_dir/RECOVERYXLOG", "old content");
	my ($rc, $stdout, $stderr) = run_restore('-d', $archive,
		'000000010000000000000030', 'pg_wal/RECOVERYXLOG');
	is($rc, 2, 'failed restore over existing destination: exit code 2');
	is(read_file("$dest_dir/RECOVERYXLOG"),
		'old content', 'failed restore leaves existing destination alone');
	unlink "$dest_dir/RECOVERYXLOG";
}

SKIP:
{
	skip 'lz4 is not installed', 4 unless $have{lz4};

	my $lz4 = archive_compressed('lz4', '000000010000000000000031',
		fake_segment(seed => 31));
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
		fake_segment(seed => 32));
	my $data = read_file($gz);
	write_file($gz, substr($data, 0, length($data) - 4));
	restore_fails('000000010000000000000032',
		qr/could not decompress file ".*000000010000000000000032\.gz": file is truncated/,
		'truncated .gz (trailer cut off)');

	# flip the bytes of the CRC in the trailer
	$data = read_file(
		archive_compressed('gzip', '000000010000000000000033',
			fake_segment(seed => 33)));
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
	fake_segment(size => 3 * 1024 * 1024));
restore_fails('000000010000000000000040', qr/has invalid size 3145728 bytes/,
	'segment whose size is not a power of two');

write_file("$archive/000000010000000000000041",
	fake_segment(size => 512 * 1024));
restore_fails('000000010000000000000041', qr/has invalid size 524288 bytes/,
	'segment smaller than 1 MB');

write_file("$archive/000000010000000000000042", '');
restore_fails('000000010000000000000042', qr/has invalid size 0 bytes/,
	'empty segment');

write_file("$archive/000000010000000000000043",
	fake_segment(magic => 0xD10D));
restore_fails('000000010000000000000043',
	qr/invalid WAL page magic 0xD10D, expected ${\ sprintf('0x%04X', $MAGIC{$MAJOR}) } for PostgreSQL $MAJOR/,
	'segment with the magic of no supported version');

# Every supported version writes its own WAL format: a segment of another
# version is refused, whichever it is.
write_file("$archive/000000010000000000000048",
	fake_segment(magic => $MAGIC{$OTHER}));
restore_fails('000000010000000000000048',
	qr/is WAL of PostgreSQL $OTHER, but the server is PostgreSQL $MAJOR \(from the server this program was built for\)/,
	'segment of another major version');

# In a data directory, its PG_VERSION says which version asks: the same
# program restores 16's WAL for a 16 server (16 is not tested otherwise).
write_file("$datadir/PG_VERSION", "16\n");
write_file("$archive/000000010000000000000049",
	fake_segment(magic => $MAGIC{16}, seed => 49));
restore_ok('000000010000000000000049', fake_segment(magic => $MAGIC{16}, seed => 49),
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
# refused.  fake_segment(seed => N) has system identifier 7e18 + N.
mkdir "$datadir/global" or die;
write_file("$datadir/global/pg_control",
	pack('Q<', 7000000000000000000 + 60) . ("\0" x 8184));
write_file("$archive/000000010000000000000060", fake_segment(seed => 60));
restore_ok('000000010000000000000060', fake_segment(seed => 60),
	'segment of this database system');
write_file("$archive/000000010000000000000061", fake_segment(seed => 61));
restore_fails('000000010000000000000061',
	qr/is WAL of database system 7000000000000000061, but the server is database system 7000000000000000060/,
	'segment of another database system');
unlink "$datadir/global/pg_control";
rmdir "$datadir/global";

write_file("$archive/000000010000000000000044", fake_segment(info => 0));
restore_fails('000000010000000000000044',
	qr/does not start with a long WAL page header/,
	'segment without XLP_LONG_HEADER');

write_file("$archive/000000010000000000000045",
	fake_segment(size => 1024 * 1024, seg_size => $SEG_SIZE));
restore_fails('000000010000000000000045',
	qr/has 1048576 bytes, but its page header gives WAL segment size 16777216/,
	'segment whose header gives another size');

write_file("$archive/000000010000000000000046.partial",
	fake_segment(size => $SEG_SIZE + 8192));
restore_fails('000000010000000000000046.partial',
	qr/has invalid size 16785408 bytes/,
	'partial segment of wrong size');

# The size check must also apply to the decompressed content.
SKIP:
{
	skip 'gzip is not installed', 4 unless $have{gzip};
	archive_compressed('gzip', '000000010000000000000047',
		fake_segment(size => 3 * 1024 * 1024));
	restore_fails('000000010000000000000047',
		qr/restored content of ".*000000010000000000000047\.gz" has invalid size 3145728 bytes/,
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
	is($rc, 2, 'destination directory missing: exit code 2');
	like(
		$stderr,
		qr/^pg_walvault_restore: error: could not create file "no_such_dir\/RECOVERYXLOG\.pg_walvault_restore\.tmp": No such file or directory$/m,
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

done_testing();

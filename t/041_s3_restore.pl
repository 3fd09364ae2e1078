# pg_walvault_restore -u: restore from an S3-compatible object store.
#
# The store is a real one, Ceph's RADOS gateway on a throwaway one-node
# cluster (t/S3Test.pm, scripts/rgw.sh), reached through HAProxy, which
# fails requests on demand, or directly where the proxy would be in the
# way (radosgw stopped: connection refused).  No PostgreSQL server: as in
# t/010 and t/031, a fake data directory stands for the server's, and
# segments are fakes that pass every check (t/RestoreTest.pm).
#
# What is checked: every way an object is stored restores byte-identical;
# only the store's own "not there" exits 1, and only for the exact names
# (never a .partial or .backup sharing the prefix); every other failure of
# the store, of the connection to it or of the content exits 255 with the
# HTTP status and the store's error code, and never the secret; transient
# failures are retried; a stalled store is given up in bounded time; -j
# prefetches from the store under the same rules as from a directory.
use strict;
use warnings;
use File::Spec;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Utils;
use RestoreTest;
use S3Test;
use Test::More;
use Time::HiRes qw(time);

S3Test::skip_all_unless_available(proxy => 1);

my $prog = 'pg_walvault_restore';
my $FATAL = 255;
my $SYSID = 7000000000000000041;
my $PREFIX = 'main';

my $tempdir = File::Spec->rel2abs(PostgreSQL::Test::Utils::tempdir);
my $src = "$tempdir/src";      # objects before they are uploaded
my $data = "$tempdir/data";    # stands in for the server's data directory
my $spool = "$data/pg_wal/pg_walvault_spool";
mkdir $_ or die "mkdir $_: $!" for ($src, $data, "$data/pg_wal", "$data/global");
write_file("$data/PG_VERSION", "$MAJOR\n");
write_file("$data/global/pg_control", pack('Q<', $SYSID) . ("\0" x 8184));

# Run the program in the data directory, as the server does; returns exit
# code, stderr and seconds taken.
sub run_restore
{
	my (@args) = @_;
	my ($out, $err) = ('', '');
	my $start = time();

	print("# Running: $prog " . join(' ', @args) . "\n");
	IPC::Run::run([ $prog, @args ],
		'>', \$out, '2>', \$err, init => sub { chdir $data or die; });
	my $status = $?;
	die "$prog was killed by signal " . ($status & 127) if $status & 127;
	print "# stderr:\n$err" =~ s/^/# /mgr if $err ne '';
	return ($status >> 8, $err, time() - $start);
}

sub temp_files
{
	return glob("$data/pg_wal/RECOVERYXLOG.*.pg_walvault_restore.tmp");
}

sub nothing_left_behind
{
	my ($test) = @_;
	ok(!-e "$data/pg_wal/RECOVERYXLOG", "$test: destination not created");
	is(join(' ', temp_files()), '', "$test: no temporary file left");
	return;
}

###
### Command-line errors: no store needed
###
{
	my @file = ('000000010000000000000001', 'pg_wal/RECOVERYXLOG');
	foreach my $case (
		[
			[ '-d', $tempdir, '-u', 's3://bucket/p' ],
			qr/options -d and -u cannot be used together/, '-d with -u'
		],
		[ [], qr/no archive specified: give -d DIRECTORY or -u/, 'no archive' ],
		[
			[ '-u', 'https://b/p' ], qr/invalid value "https:\/\/b\/p" for option -u\/--url/,
			'-u that is not an s3:// URL'
		],
		[ [ '-u', 's3://' ], qr/invalid value "s3:\/\/" for option -u\/--url/, '-u without a bucket' ],
		[
			[ '-u', 's3://bucket/p', '--s3-uri-style', 'virtual' ],
			qr/invalid value "virtual" for option --s3-uri-style: must be "host" or "path"/,
			'--s3-uri-style of neither kind'
		],
		[
			[ '-u', 's3://bucket/p', '--s3-endpoint', 'ftp://host' ],
			qr/invalid value "ftp:\/\/host" for option --s3-endpoint/,
			'--s3-endpoint that is not http(s)'
		],
		[
			[ '-u', 's3://bucket/p', '--s3-stall-timeout', '0' ],
			qr/invalid value "0" for option --s3-stall-timeout/,
			'--s3-stall-timeout of 0'
		],
		[
			[ '-d', $tempdir, '--s3-region', 'eu-west-1' ],
			qr/the --s3-\* options need -u, not -d/, '--s3-region with -d'
		])
	{
		my ($args, $re, $test) = @$case;
		my ($rc, $err) = run_restore(@$args, @file);
		is($rc, $FATAL, "$test: exit code $FATAL");
		like($err, $re, "$test: error message");
	}

	like(`$prog --help`, qr/-u s3:\/\/BUCKET\[\/PREFIX\] FILE DESTINATION/,
		'--help shows -u');
}

###
### The store
###
# S3Test cleared every AWS_* variable of ours and disabled instance
# metadata: the program finds the keys in its environment, and nothing else
# (no ~/.aws/credentials of the user running the tests).
my $s3 = S3Test->start(proxy => 1);
$ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
$ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
$ENV{AWS_SHARED_CREDENTIALS_FILE} = "$tempdir/no-credentials-file";

my $bucket = $s3->bucket;
my @store = ('--s3-endpoint', $s3->proxy_endpoint, '--s3-uri-style', 'path');
my @url = ('-u', "s3://$bucket/$PREFIX", @store);

my %content;
sub seg_name { return sprintf('%08X0000000000000%03X', $_[1] // 1, $_[0]); }

sub put_file
{
	my ($key, $file) = @_;
	my $status = $s3->put_object($key, $file);
	die "could not upload $key: HTTP $status" unless $status == 200;
	return;
}

# Upload $content as $PREFIX/$name$suffix, compressed as the suffix says.
sub put
{
	my ($name, $suffix, $content) = @_;
	my $file = "$src/$name$suffix";
	my %tool = (
		'.zst' => [ 'zstd', '-q', '-c' ],
		'.lz4' => [ 'lz4', '-q', '-c' ],
		'.gz' => [ 'gzip', '-n', '-c' ]);
	if ($suffix eq '' || !$tool{$suffix})
	{
		write_file($file, $content);
	}
	else
	{
		IPC::Run::run($tool{$suffix}, '<', \$content, '>', $file)
		  or die "@{$tool{$suffix}} failed";
	}
	put_file("$PREFIX/$name$suffix", $file);
	return $file;
}

# A 1 MB segment of our database system, uploaded as $suffix says.
sub put_segment
{
	my ($n, %opt) = @_;
	my $name = seg_name($n, $opt{tli});
	my $c = fake_segment(name => $name, sysid => $SYSID, seed => $n);
	$content{$name} = $c;
	put($name, $opt{suffix} // '', $c);
	return $name;
}

sub restore_ok
{
	my ($name, $test, @extra) = @_;
	unlink "$data/pg_wal/RECOVERYXLOG";
	my ($rc, $err) = run_restore(@url, @extra, $name, 'pg_wal/RECOVERYXLOG');
	is($rc, 0, "$test: exit code 0");
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $content{$name},
		"$test: restored file is byte-identical");
	is(join(' ', temp_files()), '', "$test: no temporary file left");
	return $err;
}

sub restore_fails
{
	my ($name, $re, $test, %opt) = @_;
	unlink "$data/pg_wal/RECOVERYXLOG";
	my ($rc, $err, $secs) = run_restore(@{ $opt{url} // \@url },
		$name, 'pg_wal/RECOVERYXLOG');
	is($rc, $opt{rc} // $FATAL, "$test: exit code " . ($opt{rc} // $FATAL));
	like($err, $re, "$test: error message");
	nothing_left_behind($test);
	return ($err, $secs);
}

###
### Every way an object is stored
###
{
	put_segment(0x01);
	my $err = restore_ok(seg_name(0x01), 'plain object', '-v');
	like($err,
		qr/restored "pg_wal\/RECOVERYXLOG" from "s3:\/\/\Q$bucket\E\/$PREFIX\/${\ seg_name(0x01)}" \(uncompressed, 1048576 bytes\)/,
		'plain object: -v says where it came from');

	put_segment(0x02, suffix => '.zst');
	put_segment(0x03, suffix => '.lz4');
	put_segment(0x04, suffix => '.gz');
	restore_ok(seg_name(0x02), '.zst object');
	restore_ok(seg_name(0x03), '.lz4 object');
	restore_ok(seg_name(0x04), '.gz object');

	# the lookup order is a directory's: plain, .zst, .lz4, .gz
	my $name = seg_name(0x05);
	put_segment(0x05, suffix => '.gz');
	$content{$name} = fake_segment(name => $name, sysid => $SYSID, seed => 55);
	put($name, '.lz4', $content{$name});
	restore_ok($name, '.lz4 preferred over .gz');

	# history files, and a prefix given with slashes around it
	my $history = "1\t0/3000000\tno recovery target specified\n";
	$content{'00000002.history'} = $history;
	put('00000002.history', '.zst', $history);
	unlink "$data/pg_wal/RECOVERYXLOG";
	my ($rc) = run_restore('-u', "s3://$bucket/$PREFIX/", @store,
		'00000002.history', 'pg_wal/RECOVERYXLOG');
	is($rc, 0, 'history file, prefix with a trailing slash: exit code 0');
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $history,
		'history file: byte-identical');
}

###
### Not in the store: 1, for the exact names only
###
{
	# only of an archive that carries its marker (t/054): a prefix without
	# one is not there, a wrong prefix say
	restore_fails(seg_name(0x0F),
		qr/error: s3:\/\/\Q$bucket\E\/$PREFIX at .* has no archive marker "pg_walvault.archive"/,
		'missing segment, no marker');
	put('pg_walvault.archive', '', "system_identifier = $SYSID\n");
	restore_fails(seg_name(0x0F), qr/^$/, 'missing segment', rc => 1);

	restore_fails(seg_name(0x0F),
		qr/file "\Q${\ seg_name(0x0F)}\E" not found in s3:\/\/\Q$bucket\E\/$PREFIX at /,
		'missing segment with -v', rc => 1, url => [ @url, '-v' ]);

	# objects that share the segment's name as a prefix are not it
	my $name = seg_name(0x10);
	my $seg = fake_segment(name => $name, sysid => $SYSID, seed => 16);
	put($name, '.partial', $seg);
	put($name, '.00000028.backup', "START WAL LOCATION: 0/10000028 (file $name)\n");
	put($name, '.zst.tmp', $seg);
	put($name . '0', '', $seg);
	restore_fails($name, qr/^$/, 'only .partial, .backup and longer names stored', rc => 1);

	# while the .partial is restored under its own name
	$content{"$name.partial"} = $seg;
	restore_ok("$name.partial", 'the .partial under its own name');

	# the prefix is a "directory": another one's objects are not ours
	put_segment(0x11);
	unlink "$data/pg_wal/RECOVERYXLOG";
	my ($rc, $err) = run_restore('-u', "s3://$bucket/mai", @store,
		seg_name(0x11), 'pg_wal/RECOVERYXLOG');
	is($rc, $FATAL,
		'a prefix that is only the start of another: not an archive, error');
	like($err, qr/has no archive marker/,
		'a prefix that is only the start of another: its marker is not ours');
}

###
### The store refuses, fails or cannot be reached: 255, never 1
###
{
	my $name = seg_name(0x01);
	my $secret = 'NotTheSecretKeyAtAll0000000000000000000x';
	my ($err) = do
	{
		local $ENV{AWS_SECRET_ACCESS_KEY} = $secret;
		restore_fails($name, qr/error: could not list the objects named "\Q$name\E" in s3:\/\/\Q$bucket\E\/$PREFIX at .*: HTTP 403 SignatureDoesNotMatch/,
			'wrong secret');
	};
	unlike($err, qr/\Q$secret\E/, 'wrong secret: the secret is not printed');
	unlike($err, qr/\Q${\ $s3->secret_key }\E/, 'wrong secret: nor the right one');

	{
		local $ENV{AWS_ACCESS_KEY_ID} = 'NOSUCHACCESSKEY00000';
		restore_fails($name, qr/HTTP 403 InvalidAccessKeyId/, 'unknown access key');
	}
	{
		local $ENV{AWS_ACCESS_KEY_ID};
		local $ENV{AWS_SECRET_ACCESS_KEY};
		delete $ENV{AWS_ACCESS_KEY_ID};
		delete $ENV{AWS_SECRET_ACCESS_KEY};
		restore_fails($name, qr/no AWS credentials found/, 'no credentials');
	}

	restore_fails($name, qr/HTTP 404 NoSuchBucket/, 'missing bucket',
		url => [ '-u', "s3://no-such-bucket-$$/$PREFIX", @store ]);

	# a corrupt object, whichever stage finds it
	my $bad = seg_name(0x20);
	my $zst = read_file(put($bad, '.zst',
		fake_segment(name => $bad, sysid => $SYSID, seed => 0x20)));
	substr($zst, int(length($zst) / 2), 1) ^= "\x55";
	write_file("$src/bad.zst", $zst);
	put_file("$PREFIX/$bad.zst", "$src/bad.zst");
	restore_fails($bad, qr/error: could not decompress file "s3:\/\/\Q$bucket\E\/$PREFIX\/$bad\.zst"|error: restored content of "s3:.*\Q$bad\E\.zst"/,
		'corrupt .zst object');

	$bad = seg_name(0x21);
	my $gz = read_file(put($bad, '.gz',
		fake_segment(name => $bad, sysid => $SYSID, seed => 0x21)));
	substr($gz, -8, 4) = ~substr($gz, -8, 4);
	write_file("$src/bad.gz", $gz);
	put_file("$PREFIX/$bad.gz", "$src/bad.gz");
	restore_fails($bad, qr/could not decompress file "s3:.*\Q$bad\E\.gz": incorrect data check/,
		'.gz object with a bad CRC');

	# a segment stored under another one's name
	$bad = seg_name(0x22);
	put($bad, '', $content{$name});
	restore_fails($bad, qr/starts at WAL location .*, but its name says/,
		'segment under another name');
}

###
### Transient failures are retried; what does not pass is given up in time
###
{
	my $name = seg_name(0x01);
	$s3->fail_next(2);
	my $err = restore_ok($name, 'two 500 answers, then success', '-v');
	is(scalar(() = $err =~ /HTTP 500 .*; trying again/g), 2,
		'two 500 answers: both were tried again');

	$s3->fail_all;
	restore_fails($name, qr/HTTP 500 InternalError.*\(4 attempts\)/,
		'500 on every attempt');
	$s3->stop_failing;

	# a store that stops answering: the stall timeout, on every attempt
	$s3->sigstop;
	my (undef, $secs) = restore_fails($name, qr/error: could not list the objects named "\Q$name\E".*\(4 attempts\)/,
		'stalled store', url => [ @url, '--s3-stall-timeout=1', '--s3-connect-timeout=1' ]);
	$s3->sigcont;
	cmp_ok($secs, '<', 30, 'stalled store: given up in bounded time');

	# A download that stalls midway is tried again from its beginning: held
	# by the test hook after its first piece, radosgw stopped, released; the
	# GET stalls once what the sockets held is read, is given up, and is
	# tried again on a new connection once radosgw runs again.
	{
		my $big = seg_name(0x40);
		$content{$big} = fake_segment(name => $big, sysid => $SYSID,
			seed => 0x40, size => 16 * 1024 * 1024);
		put($big, '', $content{$big});
		my $fifo = "$tempdir/hold.fifo";
		system('mkfifo', $fifo) == 0 or die 'mkfifo failed';
		unlink "$data/pg_wal/RECOVERYXLOG";

		local $ENV{PG_WALVAULT_RESTORE_TEST_HOLD} = "$big:$fifo";
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start(
			[
				$prog, '-v', '-u', "s3://$bucket/$PREFIX", '--s3-endpoint',
				$s3->endpoint, '--s3-uri-style', 'path',
				'--s3-stall-timeout=1', $big, 'pg_wal/RECOVERYXLOG'
			],
			'>', \$out, '2>', \$err, init => sub { chdir $data or die; },
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
		open(my $rd, '<', $fifo) or die "open $fifo: $!";
		my $held = <$rd>;
		close $rd;
		$s3->sigstop;
		open(my $wr, '>', $fifo) or die "open $fifo: $!";
		close $wr;
		$h->pump until $err =~ /trying again/;
		$s3->sigcont;
		$h->finish;
		print "# stderr:\n$err" =~ s/^/# /mgr;
		is($h->result(0), 0, 'download stalled midway: exit code 0');
		like($err, qr/reading "s3:.*\Q$big\E" again from its beginning/,
			'download stalled midway: read again from the beginning');
		ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $content{$big},
			'download stalled midway: byte-identical');
		unlink $fifo;
	}

	# nobody listens (radosgw itself, not the proxy in front of it)
	my @direct = ('-u', "s3://$bucket/$PREFIX", '--s3-endpoint',
		$s3->endpoint, '--s3-uri-style', 'path');
	$s3->stop_rgw;
	restore_fails($name, qr/error: could not list .*Couldn't connect to server \(4 attempts\)/,
		'store not running', url => \@direct);

	# on a standby, --retry-io-errors makes the server ask again later
	write_file("$data/standby.signal", '');
	restore_fails($name, qr/reported as not available \(--retry-io-errors in standby mode\)/,
		'store not running, --retry-io-errors on a standby',
		rc => 1, url => [ @direct, '--retry-io-errors' ]);
	unlink "$data/standby.signal";
	$s3->start_rgw;
	restore_ok($name, 'store running again');
}

###
### -j: prefetching from the store
###
{
	my $postmaster = fork();
	die "fork: $!" unless defined $postmaster;
	if ($postmaster == 0)
	{
		exec('sleep', '3600') or die "exec: $!";
	}
	write_file("$data/postmaster.pid", "$postmaster\n$data\n");
	write_file("$data/recovery.signal", '');

	my @suffixes = ('', '.zst', '.lz4', '.gz');
	put_segment($_, suffix => $suffixes[ $_ % 4 ]) for 0x30 .. 0x37;

	my @served;
	foreach my $n (0x30 .. 0x37)
	{
		my $err = restore_ok(seg_name($n), "-j 4, segment $n", '-v', '-j', '4');
		push @served, $n if $err =~ /from the prefetch spool/;
	}
	is(join(' ', @served), join(' ', 0x31 .. 0x37),
		'-j 4: every segment after the first was served from the spool');

	# missing at the end: 1, as without -j
	my ($rc) = run_restore(@url, '-j', '4', seg_name(0x38), 'pg_wal/RECOVERYXLOG');
	is($rc, 1, '-j 4, end of the archive: exit code 1');

	# another archive for the same data directory: never served from the
	# prefetcher of this one
	my $lock = read_file("$spool/prefetcher.lock");
	my ($pf) = ($lock // '') =~ /^(\d+)/;
	ok($pf && kill(0, $pf), 'the prefetcher runs');
	mkdir "$tempdir/archive" or die;
	write_file("$tempdir/archive/" . seg_name(0x39), $content{ seg_name(0x39) } =
		  fake_segment(name => seg_name(0x39), sysid => $SYSID, seed => 0x39));
	my $err;
	unlink "$data/pg_wal/RECOVERYXLOG";
	($rc, $err) = run_restore('-v', '-j', '4', '-d', "$tempdir/archive",
		seg_name(0x39), 'pg_wal/RECOVERYXLOG');
	is($rc, 0, '-d while an -u prefetcher runs: exit code 0');
	like($err, qr/fetching "\Q${\ seg_name(0x39)}\E" directly: the prefetcher was started for another archive/,
		'-d while an -u prefetcher runs: fetched directly');
	ok(wait_until(sub { !kill(0, $pf) }), 'the prefetcher of the other archive exits');

	kill 'KILL', $postmaster;
	waitpid($postmaster, 0);
	ok(wait_until(sub { !-e $spool }), 'postmaster gone: the spool is removed');
}

$s3->stop;
done_testing();

# The prefetcher of pg_walvault_restore -j, without a server.
#
# A fake data directory stands for the server's: PG_VERSION, pg_control with
# a system identifier, recovery.signal, and postmaster.pid naming a process
# of ours that stands for the postmaster.  The program runs there, as a
# restore_command does.  Segments are 1 MB fakes that pass every check.
# Every wait polls files or processes; the test-only hook
# PG_WALVAULT_RESTORE_TEST_HOLD holds a worker mid-file where a test needs
# to act at that moment.
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
my $FATAL = 255;
my $SYSID = 7000000000000000042;

my $tempdir = File::Spec->rel2abs(PostgreSQL::Test::Utils::tempdir);
my $archive = "$tempdir/archive";
my $data = "$tempdir/data";
my $spool = "$data/pg_wal/pg_walvault_spool";
mkdir $_ or die "mkdir $_: $!" for ($archive, $data, "$data/pg_wal", "$data/global");
write_file("$data/PG_VERSION", "$MAJOR\n");
write_file("$data/global/pg_control", pack('Q<', $SYSID) . ("\0" x 8184));
write_file("$data/recovery.signal", '');
# the marker pg_walvault writes: "not found" is said only with it (t/054)
write_marker($archive, $SYSID);

# A process that stands for the postmaster.
my $postmaster;
sub start_postmaster
{
	$postmaster = fork();
	die "fork: $!" unless defined $postmaster;
	if ($postmaster == 0)
	{
		exec('sleep', '3600') or die "exec: $!";
	}
	write_file("$data/postmaster.pid", "$postmaster\n$data\n");
	return;
}
start_postmaster();
END { kill 'KILL', $postmaster if $postmaster; }

my %content;
sub seg_name { return sprintf('%08X0000000000000%03X', $_[1] // 1, $_[0]); }
sub archive_segment
{
	my ($n, %opt) = @_;
	my $name = seg_name($n, $opt{tli});
	my $c = fake_segment(name => $name, sysid => $SYSID, seed => $n + 100 * ($opt{tli} // 1));
	$content{$name} = $c;
	my $suffix = $opt{suffix} // '';
	if ($suffix eq '')
	{
		write_file("$archive/$name", $c);
	}
	else
	{
		my %tool = ('.zst' => [ 'zstd', '-q', '-c' ], '.lz4' => [ 'lz4', '-q', '-c' ],
			'.gz' => [ 'gzip', '-n', '-c' ]);
		IPC::Run::run($tool{$suffix}, '<', \$c, '>', "$archive/$name$suffix")
		  or die "@{$tool{$suffix}} failed";
	}
	return $name;
}

# Run one restore as the server would, in the data directory.
sub restore
{
	my ($name, %opt) = @_;
	my $dest = $opt{dest} // 'pg_wal/RECOVERYXLOG';
	my @opts = @{ $opt{opts} // [ '-j', '2' ] };
	my ($out, $err) = ('', '');
	unlink "$data/$dest";
	IPC::Run::run([ $prog, '-v', @opts, '-d', $archive, $name, $dest ],
		'>', \$out, '2>', \$err, init => sub { chdir $data or die; });
	print "# stderr of $name:\n$err" =~ s/^/# /mgr;
	return ($? >> 8, $err);
}

sub prefetcher_pid
{
	my $lock = read_file("$spool/prefetcher.lock");
	return defined $lock && $lock =~ /^(\d+)/ ? $1 : undef;
}

sub alive { return kill(0, $_[0]); }

# The prefetcher has settled: no worker writes, the spool holds @names.
sub spool_settles_to
{
	my (@names) = @_;
	return wait_until(
		sub {
			opendir(my $dh, $spool) or return 0;
			my @temp = grep { /\.tmp$/ } readdir($dh);
			closedir $dh;
			return !@temp && join(' ', spool_segments($spool)) eq join(' ', @names);
		});
}

sub restored_ok
{
	my ($name, $test, $dest) = @_;
	ok(read_file("$data/" . ($dest // 'pg_wal/RECOVERYXLOG')) eq $content{$name},
		"$test: restored content is ${name}'s");
	return;
}

archive_segment($_) for 0x10 .. 0x18;

###
### The first request starts the prefetcher; the next ones are served by it
###
{
	my ($rc, $err) = restore(seg_name(0x10));
	is($rc, 0, 'first request: exit code 0');
	like($err, qr/prefetcher started \(pid \d+, 2 jobs/, 'first request started a prefetcher');
	like($err, qr/fetching "\Q${\ seg_name(0x10)}\E" directly: the segment size is not known yet/,
		'first request: fetched directly (the segment size is learnt from it)');
	restored_ok(seg_name(0x10), 'first request');
	ok(alive(prefetcher_pid()), 'the prefetcher runs after the request');
	ok(spool_settles_to(seg_name(0x11), seg_name(0x12)),
		'the next 2 segments are prefetched, no more (-j 2)');

	($rc, $err) = restore(seg_name(0x11));
	is($rc, 0, 'prefetched segment: exit code 0');
	like($err, qr/restored "\Q${\ seg_name(0x11)}\E" from the prefetch spool/,
		'prefetched segment: served from the spool');
	restored_ok(seg_name(0x11), 'prefetched segment');
	ok(spool_settles_to(seg_name(0x12), seg_name(0x13)),
		'the window moves on: still 2 segments, none older than asked');

	my $mode = (stat("$data/pg_wal/RECOVERYXLOG"))[2] & 07777;
	is(sprintf('%04o', $mode), '0600', 'served file has mode 0600');
}

###
### A timeline switch: only the exact name asked for is served
###
{
	# the same segment number on timeline 2, with other content
	archive_segment(0x13, tli => 2);
	my ($rc, $err) = restore(seg_name(0x13, 2));
	is($rc, 0, 'segment of timeline 2: exit code 0');
	like($err, qr/fetching "\Q${\ seg_name(0x13, 2)}\E" directly: not prefetched/,
		'segment of timeline 2: the prefetched timeline 1 segment is not used');
	restored_ok(seg_name(0x13, 2), 'segment of timeline 2');
	ok(spool_settles_to(),
		'older and timeline 1 segments are dropped; timeline 2 has no more');

	($rc, $err) = restore(seg_name(0x14, 2));
	is($rc, 1, 'next segment missing at the end of the archive: exit code 1');
	like($err, qr/file "\Q${\ seg_name(0x14, 2)}\E" not found in archive directory/,
		'missing segment: said with -v');
	ok(!-e "$data/pg_wal/RECOVERYXLOG", 'missing segment: nothing restored');
}

###
### A corrupt segment that was prefetched still stops recovery
###
{
	archive_segment($_) for 0x20, 0x22;
	my $bad = seg_name(0x21);
	my $c = fake_segment(name => $bad, sysid => $SYSID, seed => 21);
	substr($c, 3 * 8192, 2) = "\xAB\xAB";
	write_file("$archive/$bad", $c);

	my ($rc, $err) = restore(seg_name(0x20));
	is($rc, 0, 'segment before the corrupt one: exit code 0');
	ok(spool_settles_to(seg_name(0x22)),
		'the corrupt segment is not in the spool, the next one is');
	($rc, $err) = restore($bad);
	is($rc, $FATAL, "corrupt prefetched segment: exit code $FATAL");
	like($err, qr/prefetch of \Q$bad\E failed/, 'corrupt segment: its prefetch had failed');
	like($err, qr/fetching "\Q$bad\E" directly: its prefetch failed/,
		'corrupt segment: fetched again by the request');
	like($err, qr/error: restored content of ".*\Q$bad\E" has invalid WAL page magic 0xABAB at offset 24576/,
		'corrupt segment: the error names the file');
	ok(!-e "$data/pg_wal/RECOVERYXLOG", 'corrupt segment: nothing restored');
}

###
### End of recovery: the prefetcher exits and removes the spool
###
{
	my $pid = prefetcher_pid();
	unlink "$data/recovery.signal";
	ok(wait_until(sub { !alive($pid) }), 'recovery ended (no signal file): the prefetcher exits');
	ok(!-e $spool, 'recovery ended: the spool is removed');
	write_file("$data/standby.signal", '');
}

###
### The spool is bounded in bytes too
###
{
	archive_segment($_) for 0x30 .. 0x36;
	my ($rc) = restore(seg_name(0x30), opts => [ '-j', '4', '--spool-size=2MB' ]);
	is($rc, 0, '--spool-size=2MB: exit code 0');
	ok(spool_settles_to(seg_name(0x31), seg_name(0x32)),
		'--spool-size=2MB with -j 4: 2 segments of 1 MB in the spool');
}

###
### The postmaster dies: the prefetcher exits and removes the spool
###
{
	my $pid = prefetcher_pid();
	kill 'KILL', $postmaster;
	waitpid($postmaster, 0);
	ok(wait_until(sub { !alive($pid) }), 'postmaster gone: the prefetcher exits');
	ok(!-e $spool, 'postmaster gone: the spool is removed');
	start_postmaster();
}

###
### Idle timeout
###
{
	my ($rc) = restore(seg_name(0x30), opts => [ '-j', '2', '--idle-timeout=1' ]);
	is($rc, 0, '--idle-timeout=1: exit code 0');
	my $pid = prefetcher_pid();
	ok($pid && alive($pid), '--idle-timeout=1: the prefetcher runs');
	ok(wait_until(sub { !alive($pid) }), '--idle-timeout=1: it exits when not asked');
	ok(!-e $spool, '--idle-timeout=1: the spool is removed');
}

###
### SIGKILL of the prefetcher while a worker is mid-file
###
my $fifo = "$tempdir/hold.fifo";
system('mkfifo', $fifo) == 0 or die 'mkfifo failed';

# The worker holding $name mid-file: its pid and temporary file.
sub held_worker
{
	local $SIG{ALRM} = sub { die "timed out waiting for the held worker\n" };
	alarm($PostgreSQL::Test::Utils::timeout_default);
	open(my $rd, '<', $fifo) or die "open $fifo: $!";
	my $line = <$rd>;
	close $rd;
	alarm(0);
	return split ' ', $line;
}

sub release_worker
{
	open(my $wr, '>', $fifo) or die "open $fifo: $!";
	close $wr;
	return;
}

{
	archive_segment($_) for 0x40 .. 0x44;
	local $ENV{PG_WALVAULT_RESTORE_TEST_HOLD} = 'worker:' . seg_name(0x41) . ":$fifo";
	my ($rc) = restore(seg_name(0x40));
	is($rc, 0, 'request before the held segment: exit code 0');
	my $pf = prefetcher_pid();
	my ($worker, $temp) = held_worker();
	my $ppid = (split ' ', read_file("/proc/$worker/stat") // '')[3];
	is($ppid, $pf, 'the held process is a worker of the prefetcher');
	ok(-f "$data/$temp" && -s "$data/$temp" < 1024 * 1024,
		'the worker is mid-file: a partial temporary file in the spool');

	kill 'KILL', $pf;
	ok(wait_until(sub { !alive($pf) && !alive($worker) }),
		'SIGKILL of the prefetcher: it and its worker are gone');
	ok(-e "$data/$temp", 'the partial file is left behind for now');

	($rc, my $err) = restore(seg_name(0x41));
	is($rc, 0, 'the held segment, asked after the kill: exit code 0');
	like($err, qr/prefetcher started/, 'a new prefetcher was started');
	unlike($err, qr/from the prefetch spool/, 'nothing of the old spool was served');
	restored_ok(seg_name(0x41), 'the held segment, asked after the kill');
	ok(!-e "$data/$temp", 'the new prefetcher removed the partial file');
	isnt(prefetcher_pid(), $pf, 'the new prefetcher is another process');
}

###
### A second prefetcher cannot start while one holds the spool
###
{
	my $a = prefetcher_pid();
	ok(spool_settles_to(seg_name(0x42), seg_name(0x43)),
		'the running prefetcher has two segments ready');
	# make it unreachable: the next request starts another one
	unlink "$spool/prefetcher.sock" or die;
	my ($rc, $err) = restore(seg_name(0x44));
	is($rc, 0, 'request while the spool is locked: exit code 0');
	like($err, qr/fetching "\Q${\ seg_name(0x44)}\E" directly: no prefetcher could be reached/,
		'the second prefetcher gave up: fetched directly');
	restored_ok(seg_name(0x44), 'request while the spool is locked');
	ok(alive($a), 'the first prefetcher still runs');
	is(prefetcher_pid(), $a, 'the lock is still the first one\'s');
	is(join(' ', spool_segments($spool)), join(' ', seg_name(0x42), seg_name(0x43)),
		'its spool was left alone');
	kill 'TERM', $a;
	ok(wait_until(sub { !alive($a) && !-e $spool }),
		'SIGTERM: the prefetcher exits and removes the spool');
}

###
### Two restore commands at once, and every compression
###
SKIP:
{
	skip 'zstd, lz4 and gzip are needed', 12
	  unless grep({ system("command -v $_ >/dev/null") == 0 } qw(zstd lz4 gzip)) == 3;

	archive_segment(0x50);
	archive_segment(0x51, suffix => '.zst');
	archive_segment(0x52, suffix => '.lz4');
	archive_segment(0x53, suffix => '.gz');

	local $ENV{PG_WALVAULT_RESTORE_TEST_HOLD} = 'worker:' . seg_name(0x51) . ":$fifo";
	my ($rc) = restore(seg_name(0x50));
	is($rc, 0, 'plain segment: exit code 0');
	held_worker();

	# two requests for the held segment at once, to two destinations
	my @h;
	my %err = (RECOVERYXLOG => '', OTHER => '');
	for my $dest (qw(RECOVERYXLOG OTHER))
	{
		unlink "$data/pg_wal/$dest";
		push @h, IPC::Run::start(
			[ $prog, '-v', '-j', '2', '-d', $archive, seg_name(0x51), "pg_wal/$dest" ],
			'>', \my $out, '2>', \$err{$dest}, init => sub { chdir $data or die; });
	}
	release_worker();
	$_->finish for @h;
	is($h[0]->result(0), 0, 'two requests at once: the first exits 0');
	is($h[1]->result(0), 0, 'two requests at once: the second exits 0');
	restored_ok(seg_name(0x51), 'two requests at once, first');
	restored_ok(seg_name(0x51), 'two requests at once, second', 'pg_wal/OTHER');
	is(scalar(grep { /from the prefetch spool/ } values %err), 1,
		'the zstd segment was served from the spool once, fetched directly once');

	($rc, my $err2) = restore(seg_name(0x52));
	is($rc, 0, 'lz4 segment: exit code 0');
	like($err2, qr/restored "\Q${\ seg_name(0x52)}\E" from the prefetch spool/,
		'lz4 segment: served from the spool');
	restored_ok(seg_name(0x52), 'lz4 segment');

	($rc, my $err) = restore(seg_name(0x53));
	is($rc, 0, 'gzip segment: exit code 0');
	like($err, qr/restored "\Q${\ seg_name(0x53)}\E" from the prefetch spool/,
		'gzip segment: served from the spool');
	restored_ok(seg_name(0x53), 'gzip segment');

	my $pf = prefetcher_pid();
	kill 'TERM', $pf;
	ok(wait_until(sub { !alive($pf) && !-e $spool }), 'prefetcher stopped');
}

done_testing();

# The prefetcher's lifetime and archive, and what killed restores leave
# behind, without a server (as t/031).
#
# A fake data directory stands for the server's; a process of ours stands
# for its postmaster.  The test-only hook PG_WALVAULT_RESTORE_TEST_HOLD
# holds a worker mid-file for as long as a test needs; every wait polls.
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_NONBLOCK);
use File::Spec;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Utils;
use RestoreTest;
use Test::More;

my $prog = 'pg_walvault_restore';
my $SYSID = 7000000000000000042;

my $tempdir = File::Spec->rel2abs(PostgreSQL::Test::Utils::tempdir);

# A process that stands for the postmaster of every data directory here.
my $postmaster = fork();
die "fork: $!" unless defined $postmaster;
if ($postmaster == 0)
{
	exec('sleep', '3600') or die "exec: $!";
}
END { kill 'KILL', $postmaster if $postmaster; }

# A fake data directory in archive recovery.
sub make_data
{
	my ($data) = @_;
	mkdir $_ or die "mkdir $_: $!" for ($data, "$data/pg_wal", "$data/global");
	write_file("$data/PG_VERSION", "$MAJOR\n");
	write_file("$data/global/pg_control", pack('Q<', $SYSID) . ("\0" x 8184));
	write_file("$data/recovery.signal", '');
	write_file("$data/postmaster.pid", "$postmaster\n$data\n");
	return $data;
}

my $data = make_data("$tempdir/data");
my $spool = "$data/pg_wal/pg_walvault_spool";

sub seg_name { return sprintf('000000010000000000000%03X', $_[0]); }

# Archive segment n in $dir; seed makes its content differ between archives.
sub archive_segment
{
	my ($dir, $n, $seed) = @_;
	my $name = seg_name($n);
	mkdir $dir;
	# "not found" is said only of an archive with its marker (t/054)
	write_marker($dir, $SYSID) unless -e "$dir/pg_walvault.archive";
	my $c = fake_segment(name => $name, sysid => $SYSID, seed => $seed // $n);
	write_file("$dir/$name", $c);
	return $c;
}

# Run one restore as the server would, in a data directory.
sub restore
{
	my ($name, %opt) = @_;
	my $dir = $opt{data} // $data;
	my $dest = $opt{dest} // 'pg_wal/RECOVERYXLOG';
	my ($out, $err) = ('', '');
	unlink "$dir/$dest";
	IPC::Run::run([ $prog, '-v', @{ $opt{opts} // [] }, $name, $dest ],
		'>', \$out, '2>', \$err, init => sub { chdir $dir or die; });
	print "# stderr of $name:\n$err" =~ s/^/# /mgr;
	return ($? >> 8, $err);
}

sub prefetcher_pid
{
	my ($dir) = @_;
	my $lock = read_file(($dir // $data) . '/pg_wal/pg_walvault_spool/prefetcher.lock');
	return defined $lock && $lock =~ /^(\d+)/ ? $1 : undef;
}

sub alive { return kill(0, $_[0]); }

my $fifo = "$tempdir/hold.fifo";
system('mkfifo', $fifo) == 0 or die 'mkfifo failed';

# The worker holding a segment mid-file: its pid and temporary file.
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

# Let the held worker go on.  Never blocks: a worker killed while held
# never opens the FIFO again.
sub release_worker
{
	my ($worker) = @_;
	return wait_until(
		sub {
			return 1 unless alive($worker);
			sysopen(my $wr, $fifo, O_WRONLY | O_NONBLOCK) or return 0;
			close $wr;
			return 1;
		});
}

# Connections accepted on a spool's socket (the listening one not counted).
sub accepted_connections
{
	my ($sock) = @_;
	open(my $fh, '<', '/proc/net/unix') or return 0;
	my $n = grep { /\s\Q$sock\E$/ } <$fh>;
	close $fh;
	return $n - 1;
}

###
### A fetch slower than --idle-timeout is not abandoned: idle means nothing
### in flight
###
{
	my $archive = "$tempdir/archive";
	my %c = map { $_ => archive_segment($archive, $_) } 0x10 .. 0x11;
	my @opts = ('-j', '1', '--idle-timeout=1', '-d', $archive);

	local $ENV{PG_WALVAULT_RESTORE_TEST_HOLD} = 'worker:' . seg_name(0x11) . ":$fifo";
	my ($rc) = restore(seg_name(0x10), opts => \@opts);
	is($rc, 0, 'idle timeout: the first request exits 0');
	my $pf = prefetcher_pid();
	my ($worker) = held_worker();

	# Prefetchers of another data directory, started one after the other
	# after this one's last request, with the same timeout and nothing to
	# fetch, measure the time: once the second has exited idle, the held
	# one has been without a request for more than twice the timeout (one
	# second of it, between two checks, is the most an exit may lag).
	my $other = make_data("$tempdir/other");
	my $empty = "$tempdir/empty";
	archive_segment($empty, 0x20);
	for my $round (1 .. 2)
	{
		($rc) = restore(seg_name(0x20), data => $other,
			opts => [ '-j', '1', '--idle-timeout=1', '-d', $empty ]);
		is($rc, 0, "idle timeout: request $round of the other data directory exits 0");
		my $measure = prefetcher_pid($other);
		ok($measure && wait_until(sub { !alive($measure) }),
			"prefetcher $round with nothing in flight exits after --idle-timeout=1");
	}
	ok(alive($pf), 'a prefetcher whose worker is held longer than the timeout still runs');
	ok(alive($worker), 'its worker still runs');

	# a request for the held segment waits for it
	my ($out, $err) = ('', '');
	unlink "$data/pg_wal/RECOVERYXLOG";
	my $h = IPC::Run::start(
		[ $prog, '-v', @opts, seg_name(0x11), 'pg_wal/RECOVERYXLOG' ],
		'>', \$out, '2>', \$err, init => sub { chdir $data or die; });
	ok(wait_until(sub { accepted_connections("pg_wal/pg_walvault_spool/prefetcher.sock") >= 1 || !alive($pf) }),
		'the request for the held segment is connected');
	release_worker($worker);
	$h->finish;
	print "# stderr of the held segment:\n$err" =~ s/^/# /mgr;
	is($h->result(0), 0, 'the held segment: exit code 0');
	like($err, qr/restored "\Q${\ seg_name(0x11)}\E" from the prefetch spool/,
		'the held segment was served from the spool: its fetch was not abandoned');
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $c{0x11},
		'the held segment: restored content is right');

	ok(wait_until(sub { !alive($pf) }),
		'with nothing in flight any more, the prefetcher exits after the timeout');
	ok(!-e $spool, 'the idle prefetcher removed the spool');
}

###
### A restore_command changed to another archive (-d A, then -d B) is never
### served what was prefetched from A
###
{
	my ($a, $b) = ("$tempdir/archive_a", "$tempdir/archive_b");
	my (%ca, %cb);
	for my $n (0x30 .. 0x33)
	{
		$ca{$n} = archive_segment($a, $n, 1000 + $n);
		$cb{$n} = archive_segment($b, $n, 2000 + $n);
	}
	ok($ca{0x31} ne $cb{0x31}, 'the two archives hold different segments of the same names');

	my ($rc) = restore(seg_name(0x30), opts => [ '-j', '2', '-d', $a ]);
	is($rc, 0, '-d A: exit code 0');
	my $pf = prefetcher_pid();
	ok(wait_until(sub { join(' ', spool_segments($spool)) eq join(' ', seg_name(0x31), seg_name(0x32)) }),
		'-d A: the next two segments of A are in the spool');
	ok(read_file("$spool/" . seg_name(0x31)) eq $ca{0x31}, 'the spool holds A\'s copy');

	(my $rc2, my $err) = restore(seg_name(0x31), opts => [ '-j', '2', '-d', $b ]);
	is($rc2, 0, '-d B: exit code 0');
	unlike($err, qr/from the prefetch spool/, '-d B: nothing of A\'s spool was served');
	like($err, qr/fetching "\Q${\ seg_name(0x31)}\E" directly: the prefetcher was started for another archive/,
		'-d B: the prefetcher of A says so');
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $cb{0x31}, '-d B: restored content is B\'s');
	ok(wait_until(sub { !alive($pf) }), 'the prefetcher of A exits');

	($rc2, $err) = restore(seg_name(0x32), opts => [ '-j', '2', '-d', $b ]);
	is($rc2, 0, '-d B again: exit code 0');
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $cb{0x32}, '-d B again: restored content is B\'s');
	my $pf_b = prefetcher_pid();
	ok($pf_b && $pf_b != $pf, 'a prefetcher of B runs');
	ok(wait_until(sub { join(' ', spool_segments($spool)) eq join(' ', seg_name(0x33)) }),
		'it prefetched B\'s next segment');
	ok(read_file("$spool/" . seg_name(0x33)) eq $cb{0x33}, 'the spool holds B\'s copy');

	($rc2, $err) = restore(seg_name(0x33), opts => [ '-j', '2', '-d', $b ]);
	is($rc2, 0, 'prefetched from B: exit code 0');
	like($err, qr/restored "\Q${\ seg_name(0x33)}\E" from the prefetch spool/,
		'prefetched from B: served from the spool');
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $cb{0x33}, 'prefetched from B: content is B\'s');
	kill 'TERM', $pf_b;
	ok(wait_until(sub { !alive($pf_b) && !-e $spool }), 'prefetcher of B stopped');
}

###
### A restore killed mid-file leaves its temporary file next to the
### destination: the next restore removes it, once its process is gone
###
{
	my $archive = "$tempdir/archive";
	my $c = archive_segment($archive, 0x40);
	my ($out, $err) = ('', '');
	local $ENV{PG_WALVAULT_RESTORE_TEST_HOLD} = seg_name(0x40) . ":$fifo";
	my $h = IPC::Run::start(
		[ $prog, '-d', $archive, seg_name(0x40), 'pg_wal/RECOVERYXLOG' ],
		'>', \$out, '2>', \$err, init => sub { chdir $data or die; });
	my ($pid, $temp) = held_worker();
	ok(-f "$data/$temp", 'the held restore has a temporary file next to the destination');
	like($temp, qr{^pg_wal/RECOVERYXLOG\.$pid\.[0-9a-f]+\.pg_walvault_restore\.tmp$},
		'named after the destination and the process');
	kill 'KILL', $pid;
	$h->finish;
	ok(!alive($pid), 'SIGKILL: the restore is gone');
	ok(-f "$data/$temp", 'its temporary file is left behind');

	# one of a process that still runs is not touched
	my $live = "pg_wal/RECOVERYXLOG.$postmaster.1f.pg_walvault_restore.tmp";
	write_file("$data/$live", 'partial');

	delete $ENV{PG_WALVAULT_RESTORE_TEST_HOLD};
	my ($rc, $err2) = restore(seg_name(0x40), opts => [ '-d', $archive ]);
	is($rc, 0, 'the next restore: exit code 0');
	ok(read_file("$data/pg_wal/RECOVERYXLOG") eq $c, 'the next restore: content is right');
	ok(!-e "$data/$temp", 'the next restore removed the dead process\'s temporary file');
	like($err2, qr/removed "\Q$temp\E", left by process $pid, which is gone/, 'and said so with -v');
	ok(-e "$data/$live", 'the temporary file of a running process is left alone');
	unlink "$data/$live";
}

###
### A prefetcher killed with SIGKILL, then recovery ends: the spool it left
### is removed by the next restore that starts no prefetcher
###
{
	my $archive = "$tempdir/archive";
	archive_segment($archive, $_) for 0x50 .. 0x53;
	my ($rc) = restore(seg_name(0x50), opts => [ '-j', '2', '-d', $archive ]);
	is($rc, 0, 'killed prefetcher: the first request exits 0');
	my $pf = prefetcher_pid();
	ok(wait_until(sub { join(' ', spool_segments($spool)) eq join(' ', seg_name(0x51), seg_name(0x52)) }),
		'killed prefetcher: two segments in the spool');

	# a restore without -j leaves the spool of a running prefetcher alone
	($rc) = restore(seg_name(0x53), opts => [ '-d', $archive ]);
	is($rc, 0, 'restore without -j while the prefetcher runs: exit code 0');
	is(join(' ', spool_segments($spool)), join(' ', seg_name(0x51), seg_name(0x52)),
		'the running prefetcher\'s spool is left alone');

	kill 'KILL', $pf;
	ok(wait_until(sub { !alive($pf) }), 'SIGKILL: the prefetcher is gone');
	unlink "$data/recovery.signal";
	ok(-d $spool && spool_segments($spool) == 2, 'recovery ended: the spool is left behind');

	# the next restore in this data directory, here without a recovery (as
	# pg_rewind runs it), with -j
	my $err;
	($rc, $err) = restore(seg_name(0x53), opts => [ '-j', '2', '-d', $archive ]);
	is($rc, 0, 'the next restore: exit code 0');
	ok(!-e $spool, 'the next restore removed the spool no prefetcher held');
	like($err, qr/removed the prefetch spool/, 'and said so with -v');
	write_file("$data/recovery.signal", '');
}

done_testing();

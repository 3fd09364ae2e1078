# The S3 test server itself (t/S3Test.pm, scripts/rgw.sh): Ceph's RADOS
# gateway on a throwaway cluster, behind HAProxy. Objects go in and come
# back byte-identical, listings page and encode keys right, the proxy adds
# its latency and fails requests on demand, radosgw can be stopped, held
# and brought back, and nothing is left running afterwards.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Compare;
use PostgreSQL::Test::Utils;
use S3Test;
use Test::More;
use Time::HiRes qw(time);

S3Test::skip_all_unless_available(proxy => 1);

is($ENV{AWS_EC2_METADATA_DISABLED}, 'true', 'instance metadata disabled');
ok(!defined $ENV{AWS_ACCESS_KEY_ID} && !defined $ENV{AWS_PROFILE},
	'no AWS credentials nor profile from the environment');

my $s3 = S3Test->start(proxy => 1);
like($s3->endpoint, qr{^http://127\.0\.0\.1:\d+$}, 'radosgw endpoint');
like($s3->proxy_endpoint, qr{^http://127\.0\.0\.1:\d+$}, 'proxy endpoint');
isnt($s3->endpoint, $s3->proxy_endpoint, 'proxy on its own port');
is($s3->bucket, 'walvault', 'default bucket');

my $tmp = PostgreSQL::Test::Utils::tempdir('s3files');
sub write_file
{
	my ($path, $bytes) = @_;
	open(my $in, '<', '/dev/urandom') or die "open /dev/urandom: $!";
	binmode $in;
	read($in, my $data, $bytes) == $bytes or die "read /dev/urandom: $!";
	close $in;
	open(my $fh, '>', $path) or die "open $path: $!";
	binmode $fh;
	print $fh $data;
	close $fh or die "close $path: $!";
	return $path;
}

# a 1 MB object (curl uploads it with Expect: 100-continue) and a small one
my $big = write_file("$tmp/big", 1024 * 1024 + 17);
my $small = write_file("$tmp/small", 100);

# keys with characters that need encoding, in the path and in a prefix
my @keys = ('main/000000010000000000000001', 'main/00000001000000000000000A.zst',
	'main/a b+c=d&e~f.gz', 'other/x');
is($s3->put_object($keys[0], $big), 200, 'PUT 1 MB');
is($s3->put_object($_, $small), 200, "PUT $_") for @keys[ 1 .. 3 ];

is($s3->get_object($keys[0], "$tmp/big.back"), 200, 'GET 1 MB');
is(compare($big, "$tmp/big.back"), 0, 'byte-identical');
is($s3->get_object($keys[2], "$tmp/small.back"), 200, 'GET key with spaces and + = & ~');
is(compare($small, "$tmp/small.back"), 0, 'byte-identical');
is($s3->get_object('main/nothing', "$tmp/nothing"), 404, 'GET missing key: 404');
ok(!-e "$tmp/nothing", 'no file for a missing key');
is($s3->head_object($keys[1]), 200, 'HEAD');

is_deeply([ $s3->list_keys('main/') ], [ sort @keys[ 0 .. 2 ] ],
	'list a prefix with a slash');
is_deeply([ $s3->list_keys('main/', page_size => 1) ], [ sort @keys[ 0 .. 2 ] ],
	'list page by page');
is_deeply([ $s3->list_keys('main/a b+') ], [ $keys[2] ],
	'list a prefix that needs encoding');
is_deeply([ $s3->list_keys('') ], [ sort @keys ], 'list everything');

# conditional PUT, as an archiver uses so as never to overwrite
my $r = $s3->request(method => 'PUT', key => $keys[1], upload => $small,
	headers => ['If-None-Match: *']);
is($r->{status}, 412, 'If-None-Match: * on an existing key: 412');
is($r->{code}, 'PreconditionFailed', '... PreconditionFailed');

# another bucket
$s3->create_bucket('second');
is($s3->put_object('k', $small, bucket => 'second'), 200, 'PUT in a second bucket');
is_deeply([ $s3->list_keys('', bucket => 'second') ], ['k'], 'listed there only');

# the proxy's latency: 10 sequential small PUTs, each held at least the
# delay (a lower bound: load on the machine only makes them slower)
sub timed_puts
{
	my ($n) = @_;
	my ($total, $shortest) = (0, undef);
	for my $i (1 .. $n)
	{
		my $t0 = time;
		my $st = $s3->put_object("delay/$i", $small, via_proxy => 1);
		die "PUT through the proxy: $st" unless $st == 200;
		my $t = time - $t0;
		$total += $t;
		$shortest = $t if !defined $shortest || $t < $shortest;
	}
	return ($total, $shortest);
}
my ($fast) = timed_puts(10);
$s3->set_delay_ms(100);
my ($slow, $shortest) = timed_puts(10);
$s3->set_delay_ms(0);
note sprintf('10 PUTs through the proxy: %.2f s without delay, %.2f s with 100 ms',
	$fast, $slow);
cmp_ok($slow, '>=', 1.0, '100 ms per request through the proxy');
cmp_ok($shortest, '>=', 0.1, '... every one of them held');

# failures on demand: the next 2 requests
$s3->fail_next(2);
for my $i (1 .. 2)
{
	$r = $s3->request(method => 'GET', key => $keys[1], via_proxy => 1);
	is($r->{status}, 500, "injected failure $i: 500");
	is($r->{code}, 'InternalError', "... InternalError");
}
is($s3->failures_left, 0, 'no failure left to inject');
is($s3->get_object($keys[1], "$tmp/p", via_proxy => 1), 200, 'then the proxy serves again');
$s3->fail_all;
is($s3->put_object('f', $small, via_proxy => 1), 500, 'fail_all: PUT fails');
is($s3->get_object($keys[1], "$tmp/p", via_proxy => 1), 500, 'fail_all: GET fails');
is($s3->get_object($keys[1], "$tmp/p"), 200, 'directly radosgw still answers');
$s3->stop_failing;
is($s3->get_object($keys[1], "$tmp/p", via_proxy => 1), 200, 'stop_failing');

# radosgw held, then resumed
my $pid = $s3->rgw_pid;
ok($pid, "radosgw's pid");
$s3->sigstop;
my $t0 = time;
$r = $s3->request(method => 'GET', key => $keys[1], timeout => 2);
is($r->{status}, 0, 'radosgw stopped by SIGSTOP: no answer');
cmp_ok(time - $t0, '<', 10, '... within the client timeout');
$s3->sigcont;
is($s3->get_object($keys[1], "$tmp/p"), 200, 'SIGCONT: answers again');

# radosgw down, then back: objects kept (the cluster runs on)
$s3->stop_rgw;
ok(!defined $s3->rgw_pid, 'radosgw stopped');
is($s3->request(method => 'GET', key => $keys[1])->{status}, 0,
	'radosgw down: connection refused');
is($s3->request(method => 'GET', key => $keys[1], via_proxy => 1)->{status}, 503,
	'radosgw down: the proxy answers 503');
$s3->start_rgw;
isnt($s3->rgw_pid, $pid, 'radosgw started again');
is($s3->get_object($keys[0], "$tmp/big.again"), 200, 'radosgw back');
is(compare($big, "$tmp/big.again"), 0, 'objects kept across its restart');

# stop: every daemon gone, the ports free
my @pids = map { (split ' ')[1] } split /\n/,
  `'$FindBin::RealBin/../scripts/rgw.sh' pids '${\ $s3->dir }' all`;
cmp_ok(scalar(@pids), '>=', 4, 'mon, osd, radosgw, haproxy (and the watchdog) running');
$s3->stop;
ok(!(grep { -d "/proc/$_" && !zombie($_) } @pids), 'stop: no daemon left');
is($s3->request(method => 'GET', key => $keys[1])->{status}, 0, 'nothing answers');

sub zombie
{
	my ($p) = @_;
	open(my $fh, '<', "/proc/$p/stat") or return 1;
	my $stat = <$fh>;
	close $fh;
	return $stat =~ /^\d+ \(.*\) Z/;
}

done_testing();

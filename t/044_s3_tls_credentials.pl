# Archiving to an S3-compatible store over TLS, and every source of
# credentials the client knows (src/s3_credentials.c).
#
# The store is Ceph's RADOS gateway (t/S3Test.pm) with its STS service on
# (session tokens are checked), and HAProxy in front of it terminating TLS
# with a certificate signed by a CA made here.
#
# - TLS: with pg_walvault.s3_ca_file naming the CA, WAL is archived over
#   https; with the system's CAs only, or with another CA, every file fails
#   with a certificate error in last_error, stays in pg_wal, and goes once
#   the right CA is set and the configuration reloaded.  The restore
#   program with --s3-ca-file: the right CA restores, another one exits
#   255.
# - Credentials from the server's environment.
# - From a shared credentials file, profile AWS_PROFILE (not [default]):
#   read again when the file changes (wrong keys: the next files fail;
#   fixed: archiving resumes); a profile the file lacks is an error naming
#   the profile and the file.
# - From instance metadata (IMDSv2), served by a small HTTP server written
#   here, handing out RGW's temporary credentials that expire 305 s after
#   each fetch: fetched again while archiving goes on, and their token is
#   sent (without it RGW refuses them).
# - None at all: an error that says where they were looked for.
# - No secret key nor session token in the server's log or in the views.
use strict;
use warnings;
use File::Compare;
use File::Copy;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use S3Test;
use Test::More;
use Time::HiRes qw(time usleep);
use WalvaultTest;

S3Test::skip_all_unless_available(tls => 1);

# S3Test disabled instance metadata and removed every AWS_* variable: what
# the server gets is set below, phase by phase.  Belt and braces: no
# client started from here may fall back on 169.254.169.254.
$ENV{AWS_EC2_METADATA_SERVICE_ENDPOINT} = 'http://127.0.0.1:9';
is($ENV{AWS_EC2_METADATA_DISABLED}, 'true', 'instance metadata disabled by default');

my $tmp = PostgreSQL::Test::Utils::tempdir('s3creds');
my $s3 = S3Test->start(tls => 1, sts => 1);
my $bucket = $s3->bucket;
my $PREFIX = 'main';
my $TIMEOUT = $PostgreSQL::Test::Utils::timeout_default;

# every secret handed to a client, looked for in the logs at the end
my %secrets = ('the S3 user\'s secret key' => $s3->secret_key);

###
### Helpers
###

# Wait until $cond->() is true, at most $TIMEOUT s, calling $step->()
# (if given) before each check: true if it became true.
sub wait_for
{
	my ($cond, $step) = @_;
	my $deadline = time + $TIMEOUT;
	while (time < $deadline)
	{
		$step->() if $step;
		return 1 if $cond->();
		usleep(100_000);
	}
	return 0;
}

# A step for wait_for: $action->() at most every $interval s.
sub every
{
	my ($interval, $action) = @_;
	my $last = 0;
	return sub {
		return if time - $last < $interval;
		$last = time;
		$action->();
	};
}

# One more WAL segment ready for archiving; returns its name.
sub new_segment
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 100) g;"
		  . " SELECT pg_walfile_name(pg_switch_wal())");
}

sub object_exists
{
	my ($seg) = @_;
	return $s3->head_object("$PREFIX/$seg") == 200;
}

sub is_ready
{
	my ($node, $seg) = @_;
	return -f $node->data_dir . "/pg_wal/archive_status/$seg.ready";
}

sub stat_walvault
{
	my ($node, $column) = @_;
	return $node->safe_psql('postgres', "SELECT $column FROM pg_stat_walvault");
}

# $seg archived: not ready any more, in the store.
sub archived_ok
{
	my ($node, $seg, $test) = @_;
	my $ok = $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_ls_archive_statusdir() WHERE name = '$seg.ready'");
	ok($ok && object_exists($seg), "$test: $seg archived, in the store")
	  or diag('last_error: ' . stat_walvault($node, 'last_error'));
	return;
}

# $seg fails: returns last_error, once the views name $seg as failed and
# $re matches; checks that the WAL stays.
sub failed_ok
{
	my ($node, $seg, $re, $test) = @_;
	my $error = '';
	wait_for(
		sub {
			$error = $node->safe_psql('postgres',
				"SELECT coalesce(last_error, '') FROM pg_stat_walvault WHERE last_failed_wal = '$seg'");
			return $error =~ $re;
		});
	like($error, $re, "$test: $seg fails with the reason in last_error");
	ok(is_ready($node, $seg) && -f $node->data_dir . "/pg_wal/$seg"
		  && !object_exists($seg),
		"$test: $seg stays in pg_wal, ready, and is not in the store");
	return $error;
}

# ALTER SYSTEM SET each setting, reload, and wait until a new session
# sees them (the postmaster has signalled every process by then).
sub set_and_reload
{
	my ($node, %set) = @_;
	my @check;
	for my $name (sort keys %set)
	{
		$node->safe_psql('postgres', "ALTER SYSTEM SET pg_walvault.$name = '$set{$name}'");
		push @check, "current_setting('pg_walvault.$name') = '$set{$name}'";
	}
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', 'SELECT ' . join(' AND ', @check))
	  or die 'the new settings were not loaded';
	return;
}

# Restart the server with the AWS_* variables of %env (undef: unset) in
# its environment instead of the test's.
sub restart_with_env
{
	my ($node, %env) = @_;
	$node->stop;
	local %ENV = %ENV;
	for my $k (keys %env)
	{
		if (defined $env{$k}) { $ENV{$k} = $env{$k}; }
		else { delete $ENV{$k}; }
	}
	$node->start;
	return;
}

sub write_atomically
{
	my ($path, $content) = @_;
	open(my $fh, '>', "$path.tmp") or die "open $path.tmp: $!";
	print $fh $content;
	close $fh or die "close $path.tmp: $!";
	rename("$path.tmp", $path) or die "rename $path: $!";
	return;
}

###
### The server: archives to s3://walvault/main at radosgw, over http first
###
my $node = walvault_node(
	'main',
	hold => 1,
	no_archive_dir => 1,
	conf => qq{
pg_walvault.archive_url = 's3://$bucket/$PREFIX'
pg_walvault.s3_endpoint = '${\ $s3->endpoint }'
pg_walvault.s3_uri_style = 'path'
pg_walvault.s3_region = '${\ $s3->region }'
pg_walvault.max_workers = 2
});

### 2. Credentials from the environment
{
	local $ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
	local $ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
	local $ENV{AWS_SHARED_CREDENTIALS_FILE} = "$tmp/no-such-file";
	$node->start;
}
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
$node->safe_psql('postgres', 'CREATE TABLE filler (i int, t text)');

my $seg = new_segment($node);
archived_ok($node, $seg, 'keys from the environment');

###
### 1. TLS, with the keys from the environment still
###
my $https = $s3->tls_endpoint;
like($https, qr{^https://127\.0\.0\.1:\d+$}, 'the store over https');
is($s3->request(method => 'HEAD', key => "$PREFIX/$seg", via_tls => 1)->{status},
	200, 'the test trusts the CA it made');
my $wrong_ca = S3Test::make_ca("$tmp/wrong-ca")->{ca_file};
my $cert_error = qr/certificate/i;

set_and_reload($node, s3_endpoint => $https, s3_ca_file => $s3->ca_file);
$seg = new_segment($node);
archived_ok($node, $seg, 'https with s3_ca_file naming the CA');
is($node->safe_psql('postgres', 'SELECT endpoint FROM pg_stat_walvault_store'),
	$https, 'pg_stat_walvault_store shows the https endpoint');

# with the system's CAs only
set_and_reload($node, s3_ca_file => '');
$seg = new_segment($node);
my $error = failed_ok($node, $seg, $cert_error, 'system CAs only');
like($error, qr/\Q$https\E/, 'system CAs only: the error names the endpoint');
note "last_error: $error";

set_and_reload($node, s3_ca_file => $s3->ca_file);
archived_ok($node, $seg, 'the right CA set again');

# with another CA
set_and_reload($node, s3_ca_file => $wrong_ca);
$seg = new_segment($node);
$error = failed_ok($node, $seg, $cert_error, 'another CA');
note "last_error: $error";

set_and_reload($node, s3_ca_file => $s3->ca_file);
archived_ok($node, $seg, 'the right CA set once more');
my $failures_tls = stat_walvault($node, 'failed_count');
cmp_ok($failures_tls, '>=', 2, 'failures counted');

### The restore program, over https
{
	my $data = "$tmp/restore-data";
	mkdir $_ or die "mkdir $_: $!" for ($data, "$data/pg_wal", "$data/global");
	copy($node->data_dir . '/PG_VERSION', "$data/PG_VERSION") or die "copy: $!";
	copy($node->data_dir . '/global/pg_control', "$data/global/pg_control")
	  or die "copy: $!";
	is($s3->get_object("$PREFIX/$seg", "$tmp/$seg.from-store"), 200,
		'the archived object read back');

	local $ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
	local $ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
	local $ENV{AWS_SHARED_CREDENTIALS_FILE} = "$tmp/no-such-file";
	my $restore = sub {
		my ($ca) = @_;
		my ($out, $err) = ('', '');
		IPC::Run::run(
			[
				'pg_walvault_restore', '-u', "s3://$bucket/$PREFIX",
				'--s3-endpoint', $https, '--s3-uri-style', 'path',
				'--s3-ca-file', $ca, $seg, 'pg_wal/RECOVERYXLOG'
			],
			'<', \undef, '>', \$out, '2>', \$err,
			init => sub { chdir $data or die "chdir $data: $!"; });
		die 'pg_walvault_restore killed by signal ' . ($? & 127) if $? & 127;
		return ($? >> 8, $err);
	};
	my ($rc, $err) = $restore->($wrong_ca);
	is($rc, 255, 'pg_walvault_restore --s3-ca-file with another CA: exit 255');
	like($err, $cert_error, '... with a certificate error');
	ok(!-e "$data/pg_wal/RECOVERYXLOG", '... and nothing restored');
	my $stderr_wrong = $err;

	($rc, $err) = $restore->($s3->ca_file);
	is($rc, 0, 'pg_walvault_restore --s3-ca-file with the right CA: exit 0')
	  or diag $err;
	is(compare("$data/pg_wal/RECOVERYXLOG", "$tmp/$seg.from-store"), 0,
		'... restored byte-identical');
	unlike($stderr_wrong . $err, qr/\Q${\ $s3->secret_key }\E/,
		'no secret in what the restore program printed');
}

###
### 3. A shared credentials file, profile "walvault"
###
set_and_reload($node, s3_endpoint => $s3->endpoint, s3_ca_file => '');
my $creds_file = "$tmp/credentials";
my $wrong_default_secret = 'wrongDefaultSecretKey0000000000000000000';
my $wrong_profile_secret = 'wrongRotatedSecretKey000000000000000000';
$secrets{'the wrong key of [default]'} = $wrong_default_secret;
$secrets{'the wrong key of [walvault]'} = $wrong_profile_secret;

sub credentials_file
{
	my ($secret) = @_;
	return "# written by t/044\n[default]\naws_access_key_id = WRONGDEFAULTKEYID\n"
	  . "aws_secret_access_key = $wrong_default_secret\n\n"
	  . "[walvault]\naws_access_key_id = ${\ $s3->access_key }\n"
	  . "aws_secret_access_key = $secret\n";
}
write_atomically($creds_file, credentials_file($s3->secret_key));
restart_with_env(
	$node,
	AWS_ACCESS_KEY_ID => undef,
	AWS_SECRET_ACCESS_KEY => undef,
	AWS_SHARED_CREDENTIALS_FILE => $creds_file,
	AWS_PROFILE => 'walvault');
$seg = new_segment($node);
archived_ok($node, $seg, 'profile walvault of the credentials file ([default] is wrong)');

# the profile's keys rotated to wrong ones: the file is read again (a
# wrong secret is SignatureDoesNotMatch to RGW without STS; with STS on, it
# tries the key as a temporary one too, and answers AccessDenied)
write_atomically($creds_file, credentials_file($wrong_profile_secret));
$seg = new_segment($node);
$error = failed_ok($node, $seg, qr/HTTP 403 (?:AccessDenied|SignatureDoesNotMatch)/,
	'the credentials file changed to a wrong secret');
note "last_error: $error";

write_atomically($creds_file, credentials_file($s3->secret_key));
my $seg2;
ok( wait_for(
		sub { !is_ready($node, $seg) && object_exists($seg) },
		every(0.5, sub { $seg2 = new_segment($node) })),
	'the credentials file fixed: archiving resumes');
archived_ok($node, $seg2, 'the credentials file fixed');

# a profile the file lacks
restart_with_env(
	$node,
	AWS_ACCESS_KEY_ID => undef,
	AWS_SECRET_ACCESS_KEY => undef,
	AWS_SHARED_CREDENTIALS_FILE => $creds_file,
	AWS_PROFILE => 'nosuchprofile');
$seg = new_segment($node);
$error = failed_ok($node, $seg,
	qr/the shared credentials file "\Q$creds_file\E" has no profile "nosuchprofile"/,
	'AWS_PROFILE names a profile the file lacks');
note "last_error: $error";
my @in_error = grep { index($error, $_) >= 0 }
  ($s3->access_key, $s3->secret_key, 'WRONGDEFAULTKEYID', $wrong_default_secret);
is(join(', ', @in_error), '', '... and names no key');

###
### 5. No credentials anywhere
###
restart_with_env(
	$node,
	AWS_ACCESS_KEY_ID => undef,
	AWS_SECRET_ACCESS_KEY => undef,
	AWS_SHARED_CREDENTIALS_FILE => "$tmp/no-such-file",
	AWS_PROFILE => undef);
ok(is_ready($node, $seg), "$seg still waits");
my $no_creds = qr/no AWS credentials found: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, there is no shared credentials file "\Q$tmp\E\/no-such-file", and instance metadata is disabled \(AWS_EC2_METADATA_DISABLED\)/;
# the views keep the first 255 bytes of a message: the server log has it all
$error = failed_ok($node, $seg, qr/no AWS credentials found: AWS_ACCESS_KEY_ID/,
	'no credentials');
note "last_error: $error";
ok(wait_for(sub { slurp_file($node->logfile) =~ $no_creds }),
	'no credentials: the server log says where they were looked for')
  or diag 'no ' . $no_creds . ' in ' . $node->logfile;

###
### 4. Instance metadata (IMDSv2) served here
###
my $t = $s3->session_token(900);
ok($t->{access_key} && $t->{secret_key} && $t->{token},
	'temporary credentials from RGW STS');
$secrets{'the temporary secret key'} = $t->{secret_key};
$secrets{'the session token'} = $t->{token};
is( $s3->request(
		method => 'HEAD',
		key => "$PREFIX/$seg2",
		access_key => $t->{access_key},
		secret_key => $t->{secret_key})->{status},
	403,
	'RGW refuses the temporary keys without their token');
is( $s3->request(
		method => 'HEAD',
		key => "$PREFIX/$seg2",
		access_key => $t->{access_key},
		secret_key => $t->{secret_key},
		token => $t->{token})->{status},
	200,
	'... and takes them with it');

my $imds_dir = "$tmp/imds";
mkdir $imds_dir or die "mkdir $imds_dir: $!";
my $ROLE = 'walvault-archiver';
my $LIFETIME = 305;    # 5 s before the client's refresh margin of 300 s

# what the metadata server hands out: read at each request
sub imds_serve
{
	my ($mode) = @_;
	write_atomically("$imds_dir/creds",
		join("\n", $mode, $t->{access_key}, $t->{secret_key}, $t->{token}, $LIFETIME) . "\n");
	return;
}
imds_serve('token');

my $imds_script = "$imds_dir/imds.pl";
write_atomically($imds_script, <<'IMDS');
# A fake EC2 instance metadata service, IMDSv2 only, for t/044.
#   perl imds.pl DIR ROLE
# Listens on 127.0.0.1 (port written to DIR/port), serves one request per
# connection, appends "METHOD PATH STATUS" to DIR/hits for each request.
# DIR/creds: mode ("token" or "notoken"), access key, secret key, session
# token, lifetime in seconds (the Expiration handed out is now + that).
# Exits when its parent is gone.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(strftime);

my ($dir, $role) = @ARGV;
my $parent = getppid();
my %tokens;    # token => expiry (Unix time)
my $listen = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => 0,
	Proto => 'tcp',
	Listen => 32,
	ReuseAddr => 1) or die "listen: $!";
open(my $pf, '>', "$dir/port.tmp") or die "open: $!";
print $pf $listen->sockport, "\n";
close $pf;
rename("$dir/port.tmp", "$dir/port") or die "rename: $!";

my $accept = IO::Select->new($listen);
while (getppid() == $parent)
{
	next unless $accept->can_read(1);
	my $conn = $listen->accept or next;
	eval { serve($conn); 1 } or print STDERR "imds: $@";
	close $conn;
}
exit 0;

sub hit
{
	my ($line) = @_;
	open(my $fh, '>>', "$dir/hits") or die "open hits: $!";
	syswrite($fh, "$line\n");
	close $fh;
}

sub reply
{
	my ($conn, $status, $body, $type) = @_;
	my %reason = (200 => 'OK', 400 => 'Bad Request', 401 => 'Unauthorized',
		404 => 'Not Found', 405 => 'Method Not Allowed');
	$type //= 'text/plain';
	print $conn "HTTP/1.1 $status $reason{$status}\r\n"
	  . "Content-Type: $type\r\nContent-Length: " . length($body) . "\r\n"
	  . "Connection: close\r\n\r\n$body";
	return $status;
}

sub serve
{
	my ($conn) = @_;
	my $sel = IO::Select->new($conn);
	my $buf = '';
	while ($buf !~ /\r?\n\r?\n/)
	{
		die "no request in time\n" unless $sel->can_read(5);
		my $n = sysread($conn, $buf, 8192, length $buf);
		die "connection closed\n" unless $n;
		die "request too large\n" if length $buf > 65536;
	}
	my ($head) = split /\r?\n\r?\n/, $buf, 2;
	my ($first, @lines) = split /\r?\n/, $head;
	my ($method, $path) = $first =~ m{^([A-Z]+) (\S+) HTTP/1\.[01]$};
	if (!defined $method)
	{
		hit("? ? 400");
		return reply($conn, 400, "bad request\n");
	}
	my %h;
	for (@lines)
	{
		$h{ lc $1 } = $2 if /^([^:]+):\s*(.*?)\s*$/;
	}
	hit("$method $path " . route($conn, $method, $path, \%h));
}

sub route
{
	my ($conn, $method, $path, $h) = @_;
	if ($path eq '/latest/api/token')
	{
		return reply($conn, 405, "PUT only\n") unless $method eq 'PUT';
		my $ttl = $h->{'x-aws-ec2-metadata-token-ttl-seconds'} // '';
		return reply($conn, 400, "bad or missing ttl\n")
		  unless $ttl =~ /^\d+$/ && $ttl >= 1 && $ttl <= 21600;
		my $token = join('', map { sprintf('%02x', int(rand(256))) } 1 .. 24);
		$tokens{$token} = time + $ttl;
		return reply($conn, 200, $token);
	}
	return reply($conn, 404, "not found\n")
	  unless $path =~ m{^/latest/meta-data/};
	return reply($conn, 405, "GET only\n") unless $method eq 'GET';
	my $token = $h->{'x-aws-ec2-metadata-token'} // '';
	return reply($conn, 401, "unauthorized\n")
	  unless exists $tokens{$token} && $tokens{$token} > time;
	if ($path eq '/latest/meta-data/iam/security-credentials/')
	{
		return reply($conn, 200, $role);
	}
	if ($path eq "/latest/meta-data/iam/security-credentials/$role")
	{
		open(my $fh, '<', "$dir/creds") or die "open creds: $!";
		chomp(my @c = <$fh>);
		close $fh;
		my ($mode, $ak, $sk, $tok, $lifetime) = @c;
		my %doc = (
			Code => 'Success',
			LastUpdated => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime),
			Type => 'AWS-HMAC',
			AccessKeyId => $ak,
			SecretAccessKey => $sk,
			Expiration => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(time + $lifetime)));
		$doc{Token} = $tok if $mode eq 'token';
		return reply($conn, 200, JSON::PP->new->canonical->pretty->encode(\%doc),
			'application/json');
	}
	return reply($conn, 404, "not found\n");
}
IMDS

my $imds = IPC::Run::start([ $^X, $imds_script, $imds_dir, $ROLE ],
	'<', \undef, '>', "$imds_dir/stdout", '2>', "$imds_dir/stderr");
END { eval { $imds->kill_kill } if $imds; }
ok(wait_for(sub { -s "$imds_dir/port" }), 'the metadata server listens');
my $imds_port = slurp_file("$imds_dir/port");
chomp $imds_port;
my $imds_url = "http://127.0.0.1:$imds_port";

# hits per "METHOD PATH STATUS"
sub imds_hits
{
	my %n;
	return \%n unless -e "$imds_dir/hits";
	$n{$_}++ for split /\n/, slurp_file("$imds_dir/hits");
	return \%n;
}
my $CREDS_PATH = "GET /latest/meta-data/iam/security-credentials/$ROLE";
sub creds_fetched { return imds_hits()->{"$CREDS_PATH 200"} // 0; }

# the fake service itself: IMDSv2 only
{
	my $get = `curl -sS -o /dev/null -w '%{http_code}' $imds_url/latest/meta-data/iam/security-credentials/`;
	is($get, '401', 'metadata server: a GET without a token gets 401');
	my $tok = `curl -sS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $imds_url/latest/api/token`;
	like($tok, qr/^[0-9a-f]{48}$/, 'metadata server: PUT gives a token');
	is(`curl -sS -H 'X-aws-ec2-metadata-token: $tok' $imds_url/latest/meta-data/iam/security-credentials/`,
		$ROLE, 'metadata server: the role with the token');
	unlink "$imds_dir/hits";
}

restart_with_env(
	$node,
	AWS_ACCESS_KEY_ID => undef,
	AWS_SECRET_ACCESS_KEY => undef,
	AWS_SHARED_CREDENTIALS_FILE => "$tmp/no-such-file",
	AWS_PROFILE => undef,
	AWS_EC2_METADATA_DISABLED => 'false',
	AWS_EC2_METADATA_SERVICE_ENDPOINT => $imds_url);
archived_ok($node, $seg, 'credentials from instance metadata: the waiting file');
my $hits = imds_hits();
cmp_ok($hits->{'PUT /latest/api/token 200'} // 0, '>=', 1, 'IMDSv2: a session token asked for');
cmp_ok($hits->{'GET /latest/meta-data/iam/security-credentials/ 200'} // 0,
	'>=', 1, 'IMDSv2: the role asked for');
my $fetched = creds_fetched();
cmp_ok($fetched, '>=', 1, "IMDSv2: the role's credentials fetched");

# They expire in 305 s: refreshed 5 s after each fetch, archiving going on
my $failed_before = stat_walvault($node, 'failed_count');
my $requests_before = $node->safe_psql('postgres', 'SELECT requests FROM pg_stat_walvault_store');
my @segs;
ok( wait_for(
		sub { creds_fetched() > $fetched },
		every(0.5, sub { push @segs, new_segment($node) })),
	'temporary credentials about to expire are fetched again');
$seg = new_segment($node);
archived_ok($node, $seg, 'after the refresh');
my @missing = grep { is_ready($node, $_) || !object_exists($_) } @segs;
is(join(' ', @missing), '', scalar(@segs) . ' files archived meanwhile');
is(stat_walvault($node, 'failed_count'), $failed_before, 'no failure meanwhile');
my $requests = $node->safe_psql('postgres', 'SELECT requests FROM pg_stat_walvault_store')
  - $requests_before;
cmp_ok(creds_fetched() - $fetched, '<', $requests,
	"credentials kept from request to request ($requests requests to the store meanwhile)");
my @refused = grep { / [45]\d\d$/ } keys %{ imds_hits() };
is(join(', ', @refused), '', 'the metadata server refused no request of the client');

# the token is sent: handed out without it, RGW refuses the keys
imds_serve('notoken');
ok( wait_for(
		sub { stat_walvault($node, 'failed_count') > $failed_before },
		every(0.5, sub { new_segment($node) })),
	'the temporary keys without their token: failures');
$seg = stat_walvault($node, 'last_failed_wal');
$error = failed_ok($node, $seg, qr/HTTP 403 AccessDenied/,
	'the temporary keys without their token');
note "last_error: $error";
imds_serve('token');
ok( wait_for(
		sub { !is_ready($node, $seg) && object_exists($seg) },
		every(0.5, sub { $seg2 = new_segment($node) })),
	'the token handed out again: archiving resumes');
archived_ok($node, $seg2, 'with the token again');

###
### 6. No secret anywhere
###
my $views = $node->safe_psql('postgres',
	"SELECT concat_ws(' ', (SELECT string_agg(w::text, ' ') FROM pg_stat_walvault w),"
	  . " (SELECT string_agg(w::text, ' ') FROM pg_stat_walvault_workers w),"
	  . " (SELECT string_agg(w::text, ' ') FROM pg_stat_walvault_store w))");
$node->stop;
my $log = slurp_file($node->logfile);
like($log, qr/HTTP 403 AccessDenied/, 'the server log has the errors');
for my $what (sort keys %secrets)
{
	my $secret = $secrets{$what};
	ok(index($log, $secret) < 0, "$what is not in the server log");
	ok(index($views, $secret) < 0, "$what is not in the views");
}

$imds->kill_kill;
done_testing();

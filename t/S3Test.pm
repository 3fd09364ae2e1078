# A real S3 server for pg_walvault's TAP tests: Ceph's RADOS gateway on a
# one-node in-memory cluster, optionally behind HAProxy to add latency and
# inject 500 errors, started and stopped by scripts/rgw.sh (see there).
#
#   use S3Test;
#   S3Test::skip_all_unless_available(proxy => 1);  # before any test
#   my $s3 = S3Test->start(proxy => 1);   # also: bucket => 'name', sts => 1,
#                                         # tls => 1
#   $s3->endpoint;          # http://127.0.0.1:PORT, radosgw itself
#   $s3->proxy_endpoint;    # through HAProxy (undef without proxy => 1)
#   $s3->tls_endpoint;      # https://127.0.0.1:PORT, HAProxy terminating TLS
#                           # (undef without tls => 1)
#   $s3->ca_file;           # the CA that signed its certificate (PEM)
#   my $ca = S3Test::make_ca($dir);  # another CA: {ca_file, ca_key}
#   $s3->access_key; $s3->secret_key; $s3->bucket; $s3->region; $s3->dir;
#   $s3->set_delay_ms(100); # every request through the proxy waits 100 ms
#   $s3->fail_next(3);      # the next 3 requests through the proxy: 500
#   $s3->fail_all; $s3->stop_failing; $s3->failures_left;
#   $s3->stop_rgw; $s3->start_rgw;   # radosgw only: "store down, back"
#   $s3->sigstop; $s3->sigcont;      # radosgw hangs / resumes
#   $s3->rgw_pid;
#   $s3->create_bucket('other');
#   $s3->put_object($key, $file);    # HTTP status (200)
#   $s3->get_object($key, $file);    # HTTP status (200), body in $file
#   $s3->head_object($key); $s3->delete_object($key);
#   my @keys = $s3->list_keys($prefix);  # every page, sorted
#   my $r = $s3->request(method => 'GET', key => $key, via_proxy => 1);
#   $s3->session_token(900);  # with sts => 1: temporary credentials
#   $s3->stop;              # also done at exit, and when $s3 goes away
#
# Object-taking methods accept bucket => NAME (default: the bucket made at
# start) and via_proxy => 1 (default: radosgw directly, so that checks are
# not delayed nor failed by the proxy).
#
# Loading this module makes sure no test talks to a real AWS account or
# to an instance metadata service: AWS_EC2_METADATA_DISABLED=true, and the
# AWS_* variables that would point a client elsewhere are removed.
package S3Test;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(basename dirname);
use File::Copy;
use File::Temp;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# No test may ever reach 169.254.169.254, nor credentials, a profile or an
# endpoint of the environment that runs the tests.
$ENV{AWS_EC2_METADATA_DISABLED} = 'true';
delete @ENV{
	qw(AWS_PROFILE AWS_DEFAULT_PROFILE AWS_CONFIG_FILE
	  AWS_SHARED_CREDENTIALS_FILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
	  AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	  AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ROLE_ARN
	  AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
	  AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN
	  AWS_EC2_METADATA_SERVICE_ENDPOINT)
};

my $RGW_SH = abs_path(dirname(__FILE__) . '/../scripts/rgw.sh');
my $EMPTY_SHA256 =
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

# every server started and not yet stopped, stopped at exit
my @running;

# The programs scripts/rgw.sh needs that are missing from PATH.
sub missing_programs
{
	my (%opt) = @_;
	my @need = qw(ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph
	  curl ss);
	push @need, 'haproxy' if $opt{proxy} || $opt{tls};
	push @need, 'openssl' if $opt{tls};
	my @missing;
	for my $prog (@need)
	{
		push @missing, $prog
		  unless grep { -x "$_/$prog" } split(/:/, $ENV{PATH} // ''),
		  '/usr/sbin', '/sbin';
	}
	return @missing;
}

# skip_all_unless_available(proxy => 1): skip the whole test file when the
# Ceph (and HAProxy) packages are not installed, unless under CI, which
# installs them (scripts/install-deps.sh): then the test fails. Call it
# before any test.
sub skip_all_unless_available
{
	my (%opt) = @_;
	my @missing = missing_programs(%opt);
	return 1 unless @missing;
	my $why = 'S3 test server unavailable, missing: ' . join(' ', @missing)
	  . ' (scripts/install-deps.sh installs them)';
	if ($ENV{CI} && $ENV{CI} ne 'false' && $ENV{CI} ne '0')
	{
		die "$why: required under CI\n";
	}
	plan skip_all => $why;
	return 0;
}

# run(cmd...): run a command; returns (exit status, stdout, stderr)
sub _run
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

sub _rgw_sh
{
	my ($self, @args) = @_;
	my ($rc, $out, $err) = _run($RGW_SH, $args[0], $self->{dir}, @args[ 1 .. $#args ]);
	croak "scripts/rgw.sh $args[0] failed (exit $rc):\n$err$out" if $rc != 0;
	return $out;
}

# ---- TLS: a CA and a server certificate made for the test

# make_ca($dir): a new CA in $dir (created if missing), valid two days:
# { ca_file => "$dir/ca.pem", ca_key => "$dir/ca.key" }
sub make_ca
{
	my ($dir) = @_;
	mkdir $dir unless -d $dir;
	my %ca = (ca_file => "$dir/ca.pem", ca_key => "$dir/ca.key");
	my ($rc, $out, $err) = _run(
		'openssl', 'req', '-x509', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
		'-keyout', $ca{ca_key}, '-out', $ca{ca_file}, '-days', '2',
		'-subj', '/CN=pg_walvault test CA ' . basename($dir),
		'-addext', 'basicConstraints=critical,CA:TRUE',
		'-addext', 'keyUsage=critical,keyCertSign,cRLSign');
	croak "openssl req (CA) failed (exit $rc): $err" if $rc != 0;
	return \%ca;
}

# make_server_cert($ca, $dir): a certificate for 127.0.0.1 and localhost
# signed by $ca (from make_ca), with its key, in one PEM file as HAProxy
# reads it: "$dir/server.pem", returned
sub make_server_cert
{
	my ($ca, $dir) = @_;
	mkdir $dir unless -d $dir;
	my $ext = "$dir/server.ext";
	open(my $fh, '>', $ext) or croak "open $ext: $!";
	print $fh "basicConstraints = critical, CA:FALSE\n",
	  "keyUsage = critical, digitalSignature\n",
	  "extendedKeyUsage = serverAuth\n",
	  "subjectAltName = IP:127.0.0.1, DNS:localhost\n";
	close $fh or croak "close $ext: $!";
	my ($rc, $out, $err) = _run(
		'openssl', 'req', '-new', '-newkey', 'ec',
		'-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
		'-keyout', "$dir/server.key", '-out', "$dir/server.csr",
		'-subj', '/CN=localhost');
	croak "openssl req (server) failed (exit $rc): $err" if $rc != 0;
	($rc, $out, $err) = _run(
		'openssl', 'x509', '-req', '-in', "$dir/server.csr",
		'-CA', $ca->{ca_file}, '-CAkey', $ca->{ca_key},
		'-set_serial', '0x' . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 8),
		'-days', '2', '-extfile', $ext, '-out', "$dir/server.crt");
	croak "openssl x509 (server) failed (exit $rc): $err" if $rc != 0;
	my $pem = "$dir/server.pem";
	open(my $out_fh, '>', $pem) or croak "open $pem: $!";
	for my $f ("$dir/server.crt", "$dir/server.key")
	{
		open(my $in, '<', $f) or croak "open $f: $!";
		local $/;
		print $out_fh scalar(<$in>);
		close $in;
	}
	close $out_fh or croak "close $pem: $!";
	chmod 0600, $pem;
	return $pem;
}

# S3Test->start(proxy => 1, bucket => 'walvault', sts => 1, name => 'x',
#   tls => 1)
#
# tls => 1: HAProxy also serves HTTPS (tls_endpoint), with a certificate
# for 127.0.0.1 signed by a CA made here (ca_file): clients must be told
# to trust it.
sub start
{
	my ($class, %opt) = @_;
	skip_all_unless_available(%opt);

	my $test = basename($0);
	$test =~ s/\.[^.]+$//;
	my $name = $opt{name} // 'rgw';
	my $dir = File::Temp::tempdir(
		"${name}_${test}_XXXX",
		DIR => $PostgreSQL::Test::Utils::tmp_check,
		CLEANUP => !defined $ENV{PG_TEST_NOCLEAN});
	$dir = abs_path($dir);

	my $self = bless {
		dir => $dir,
		test => $test,
		name => $name,
		owner => $$,
		proxy => $opt{proxy} ? 1 : 0,
		running => 1,
	}, $class;

	my @args = ('--owner', $$);
	push @args, '--proxy' if $opt{proxy};
	push @args, '--bucket', $opt{bucket} if defined $opt{bucket};
	push @args, '--sts' if $opt{sts};
	if ($opt{tls})
	{
		$self->{ca} = make_ca("$dir/tls-ca");
		push @args, '--tls-cert', make_server_cert($self->{ca}, "$dir/tls");
	}
	my $t0 = time;
	my ($rc, $out, $err) = _run($RGW_SH, 'start', $dir, @args);
	if ($rc != 0)
	{
		$self->{running} = 0;
		$self->_keep_logs;
		croak "scripts/rgw.sh start $dir failed (exit $rc):\n$err";
	}
	push @running, $self;

	$self->{env} = _read_env("$dir/env");
	note sprintf('S3 server %s up in %.1f s: %s%s%s', $dir, time - $t0,
		$self->endpoint,
		$self->{proxy} ? ', proxy ' . $self->proxy_endpoint : '',
		$self->{ca} ? ', TLS ' . $self->tls_endpoint : '');
	return $self;
}

# the same as start
sub new
{
	my ($class, %opt) = @_;
	return $class->start(%opt);
}

sub _read_env
{
	my ($file) = @_;
	my %env;
	open(my $fh, '<', $file) or croak "open $file: $!";
	while (my $line = <$fh>)
	{
		chomp $line;
		next unless $line =~ /^([A-Z_0-9]+)=(.*)$/;
		my ($k, $v) = ($1, $2);
		# values are written with printf %q: plain words, or '' for empty
		$v = '' if $v eq "''";
		$v =~ s/\\(.)/$1/g;
		$env{$k} = $v;
	}
	close $fh;
	return \%env;
}

sub dir            { return $_[0]->{dir}; }
sub endpoint       { return $_[0]->{env}{RGW_ENDPOINT}; }
sub rgw_endpoint   { return $_[0]->{env}{RGW_ENDPOINT}; }
sub port           { return $_[0]->{env}{RGW_PORT}; }
sub access_key     { return $_[0]->{env}{AWS_ACCESS_KEY_ID}; }
sub secret_key     { return $_[0]->{env}{AWS_SECRET_ACCESS_KEY}; }
sub bucket         { return $_[0]->{env}{RGW_BUCKET}; }
sub region         { return $_[0]->{env}{RGW_REGION}; }

sub proxy_endpoint
{
	my ($self) = @_;
	my $e = $self->{env}{PROXY_ENDPOINT};
	return (defined $e && $e ne '') ? $e : undef;
}

sub tls_endpoint
{
	my ($self) = @_;
	my $e = $self->{env}{TLS_ENDPOINT};
	return (defined $e && $e ne '') ? $e : undef;
}

sub ca_file
{
	my ($self) = @_;
	return $self->{ca} ? $self->{ca}{ca_file} : undef;
}

sub proxy_port
{
	my ($self) = @_;
	my $p = $self->{env}{PROXY_PORT};
	return (defined $p && $p ne '') ? $p : undef;
}

# radosgw's pid (undef when it is not running)
sub rgw_pid
{
	my ($self) = @_;
	my $file = "$self->{dir}/run/client.rgw.a.pid";
	open(my $fh, '<', $file) or return undef;
	my $pid = <$fh>;
	close $fh;
	return undef unless defined $pid && $pid =~ /^(\d+)/;
	$pid = $1;
	return -d "/proc/$pid" ? $pid : undef;
}

# ---- the proxy's knobs (read by HAProxy at each request)

sub _proxy_file
{
	my ($self, $name, $content) = @_;
	croak 'S3 server started without proxy => 1' unless $self->{proxy};
	my $path = "$self->{dir}/proxy/$name";
	if (!defined $content)
	{
		unlink $path;
		return;
	}
	open(my $fh, '>', "$path.new") or croak "open $path.new: $!";
	print $fh $content;
	close $fh or croak "close $path.new: $!";
	rename("$path.new", $path) or croak "rename $path: $!";
	return;
}

# every request through the proxy waits $ms ms (0: none)
sub set_delay_ms
{
	my ($self, $ms) = @_;
	$self->_proxy_file('delay_ms', $ms ? int($ms) . "\n" : undef);
	return;
}

# the next $n requests through the proxy get 500 InternalError (0: none)
sub fail_next
{
	my ($self, $n) = @_;
	$self->_proxy_file('fail500', $n ? int($n) . "\n" : undef);
	return;
}

# every request through the proxy gets 500 until stop_failing
sub fail_all
{
	my ($self) = @_;
	$self->_proxy_file('fail500', '');
	return;
}

sub stop_failing
{
	my ($self) = @_;
	$self->_proxy_file('fail500', undef);
	return;
}

# how many injected failures are still to come (-1: all requests fail)
sub failures_left
{
	my ($self) = @_;
	my $path = "$self->{dir}/proxy/fail500";
	open(my $fh, '<', $path) or return 0;
	my $n = <$fh>;
	close $fh;
	return -1 unless defined $n && $n =~ /^\s*(\d+)/;
	return $1;
}

# ---- radosgw itself

sub stop_rgw
{
	my ($self) = @_;
	$self->_rgw_sh('stop-rgw');
	return;
}

sub start_rgw
{
	my ($self) = @_;
	$self->_rgw_sh('start-rgw');
	return;
}

sub sigstop
{
	my ($self) = @_;
	my $pid = $self->rgw_pid or croak 'radosgw is not running';
	kill 'STOP', $pid or croak "kill STOP $pid: $!";
	return;
}

sub sigcont
{
	my ($self) = @_;
	my $pid = $self->rgw_pid or croak 'radosgw is not running';
	kill 'CONT', $pid or croak "kill CONT $pid: $!";
	return;
}

sub create_bucket
{
	my ($self, $name) = @_;
	$self->_rgw_sh('bucket', $name);
	return;
}

# with sts => 1: temporary credentials of the S3 user, valid $seconds
# (at least 900): { access_key, secret_key, token, expiration }
sub session_token
{
	my ($self, $seconds) = @_;
	my $out = $self->_rgw_sh('session-token', $seconds // 3600);
	my %v;
	for my $line (split /\n/, $out)
	{
		next unless $line =~ /^SESSION_([A-Z_]+)=(.*)$/;
		my ($k, $val) = ($1, $2);
		$val =~ s/\\(.)/$1/g;
		$v{$k} = $val;
	}
	return {
		access_key => $v{ACCESS_KEY_ID},
		secret_key => $v{SECRET_ACCESS_KEY},
		token => $v{TOKEN},
		expiration => $v{EXPIRATION},
	};
}

# ---- S3 requests, signed by curl (--aws-sigv4)

# SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ (and / in a
# key's path). curl signs the query as given: values must come encoded.
sub uri_encode
{
	my ($s, $keep_slash) = @_;
	my $re = $keep_slash ? qr{([^A-Za-z0-9\-_.~/])} : qr{([^A-Za-z0-9\-_.~])};
	$s =~ s/$re/sprintf('%%%02X', ord($1))/ge;
	return $s;
}

sub _xml_unescape
{
	my ($s) = @_;
	$s =~ s/&lt;/</g;
	$s =~ s/&gt;/>/g;
	$s =~ s/&quot;/"/g;
	$s =~ s/&apos;/'/g;
	$s =~ s/&#x([0-9a-fA-F]+);/chr(hex($1))/ge;
	$s =~ s/&#(\d+);/chr($1)/ge;
	$s =~ s/&amp;/&/g;
	return $s;
}

# request(method => 'GET', key => 'a/b', bucket => NAME, query => {k => v},
#   headers => ['H: v', ...], upload => FILE, output => FILE,
#   via_proxy => 1, via_tls => 1, timeout => 30,
#   access_key/secret_key/token => ...)
# returns { status (0: no answer), body (unless output), time, error }
# via_tls => 1: through tls_endpoint, trusting ca_file
sub request
{
	my ($self, %a) = @_;
	my $method = $a{method} // 'GET';
	my $base = $a{via_tls} ? $self->tls_endpoint
	  : $a{via_proxy} ? $self->proxy_endpoint : $self->endpoint;
	croak('S3 server started without ' . ($a{via_tls} ? 'tls' : 'proxy') . ' => 1')
	  unless defined $base;
	my $bucket = $a{bucket} // $self->bucket;
	my $path = '/' . $bucket;
	$path .= '/' . uri_encode($a{key}, 1) if defined $a{key};
	if ($a{query} && %{ $a{query} })
	{
		# sorted by name, as the signature's canonical query is
		$path .= '?' . join('&',
			map { uri_encode($_) . '=' . uri_encode($a{query}{$_} // '') }
			  sort keys %{ $a{query} });
	}
	my $ak = $a{access_key} // $self->access_key;
	my $sk = $a{secret_key} // $self->secret_key;

	my @cmd = (
		'curl', '-sS', '--max-time', $a{timeout} // 30,
		($method eq 'HEAD' ? ('-I') : ('-X', $method)),
		'--aws-sigv4', 'aws:amz:' . $self->region . ':s3',
		'--user', "$ak:$sk",
		'-H', 'x-amz-content-sha256: '
		  . (defined $a{upload} ? 'UNSIGNED-PAYLOAD' : $EMPTY_SHA256));
	push @cmd, '-H', "x-amz-security-token: $a{token}" if defined $a{token};
	push @cmd, '--cacert', $self->ca_file if $a{via_tls};
	push @cmd, map { ('-H', $_) } @{ $a{headers} // [] };
	push @cmd, '-T', $a{upload} if defined $a{upload};
	my $marker = "\n--walvault-s3test %{http_code} %{time_total}";
	if (defined $a{output})
	{
		# only a successful answer's body goes to the file
		push @cmd, '-o', $a{output}, '-w', $marker;
	}
	else
	{
		push @cmd, '-w', $marker;
	}
	push @cmd, $base . $path;

	my ($rc, $out, $err) = _run(@cmd);
	my %r = (status => 0, time => undef, curl_exit => $rc, error => $err);
	if ($out =~ s/\n?--walvault-s3test (\d+) ([0-9.]+)$//)
	{
		$r{status} = $1 + 0;
		$r{time} = $2 + 0;
	}
	$r{body} = $out;
	if ($r{body} =~ m{<Code>([^<]*)</Code>})
	{
		$r{code} = $1;
	}
	return \%r;
}

sub put_object
{
	my ($self, $key, $file, %a) = @_;
	croak "put_object: no file $file" unless -f $file;
	return $self->request(%a, method => 'PUT', key => $key, upload => $file)
	  ->{status};
}

sub get_object
{
	my ($self, $key, $file, %a) = @_;
	my $tmp = "$file.s3test-partial";
	my $r = $self->request(%a, method => 'GET', key => $key, output => $tmp);
	if ($r->{status} == 200)
	{
		rename($tmp, $file) or croak "rename $tmp: $!";
	}
	else
	{
		unlink $tmp;
	}
	return $r->{status};
}

sub head_object
{
	my ($self, $key, %a) = @_;
	return $self->request(%a, method => 'HEAD', key => $key)->{status};
}

sub delete_object
{
	my ($self, $key, %a) = @_;
	return $self->request(%a, method => 'DELETE', key => $key)->{status};
}

# list_keys($prefix, page_size => N, bucket => NAME): every key under
# $prefix (ListObjectsV2, all pages), sorted
sub list_keys
{
	my ($self, $prefix, %a) = @_;
	my @keys;
	my $token;
	for (;;)
	{
		my %q = ('list-type' => 2, prefix => $prefix // '');
		$q{'max-keys'} = $a{page_size} if $a{page_size};
		$q{'continuation-token'} = $token if defined $token;
		my $r = $self->request(%a, method => 'GET', key => undef, query => \%q);
		croak "list_keys: HTTP $r->{status}: $r->{body}$r->{error}"
		  unless $r->{status} == 200;
		push @keys, map { _xml_unescape($_) }
		  $r->{body} =~ m{<Contents>.*?<Key>([^<]*)</Key>}gs;
		last unless $r->{body} =~ m{<IsTruncated>true</IsTruncated>};
		($token) = $r->{body} =~ m{<NextContinuationToken>([^<]*)</NextContinuationToken>};
		croak 'list_keys: truncated list without NextContinuationToken'
		  unless defined $token;
		$token = _xml_unescape($token);
	}
	return sort @keys;
}

# ---- stopping

# Copy radosgw's and the setup's logs next to the test's logs, where
# scripts/test.sh shows them when a test fails.
sub _keep_logs
{
	my ($self) = @_;
	my $log = $PostgreSQL::Test::Utils::log_path;
	return unless defined $log && -d $log;
	for my $f (qw(client.rgw.a.log setup.log haproxy.log))
	{
		my $src = "$self->{dir}/log/$f";
		next unless -s $src;
		(my $short = $f) =~ s/^client\.rgw\.a/radosgw/;
		copy($src, "$log/$self->{test}_$self->{name}_$short");
	}
	diag "S3 server's logs: $self->{dir}/log";
	return;
}

sub stop
{
	my ($self) = @_;
	return unless $self->{running};
	# a forked child (not exec'd) must not stop its parent's server
	return unless $$ == $self->{owner};
	$self->{running} = 0;
	@running = grep { $_ != $self } @running;
	local $?;
	my ($rc, $out, $err) = _run($RGW_SH, 'stop', $self->{dir});
	warn "scripts/rgw.sh stop $self->{dir} failed (exit $rc): $err"
	  if $rc != 0;
	$self->_keep_logs unless PostgreSQL::Test::Utils::all_tests_passing();
	return;
}

sub DESTROY
{
	my ($self) = @_;
	local ($@, $!, $?);
	eval { $self->stop };
	return;
}

END
{
	local $?;
	for my $s (@running)
	{
		eval { $s->stop };
	}
}

1;

# pg_walvault.archive_url: what goes wrong with the object store.  Each
# failure is clear (in pg_stat_walvault.last_error and the log), bounded in
# time, keeps the WAL (.ready stays), and archiving resumes by itself once
# the store is fixed: new WAL wakes the server's archiver, which otherwise
# waits up to a minute after three failures of a file.  The store is Ceph's
# RADOS gateway (t/S3Test.pm), reached directly or through HAProxy, which
# answers 500 on demand.
#
# - a wrong secret key: SignatureDoesNotMatch, and the secret is in no log
#   line nor view; restarted with the right one, archived;
# - archive_url and archive_directory both set: a WARNING, and the error;
# - a bucket that does not exist: NoSuchBucket; created, archived;
# - radosgw stopped: connection errors; started again, archived;
# - two 500 answers: retried within the request, no failure counted;
# - radosgw stalled (SIGSTOP): the request is given up in bounded time;
# - another object under the name of the next segment, then a copy of the
#   segment cut short: the error, the object is not overwritten; replaced
#   by an identical copy: archived, nothing uploaded;
# - an identical copy already archived (.done made .ready again): archived,
#   nothing uploaded, no failure;
# - kill -9 of the worker in the middle of the PUT's body (held before the
#   PUT by an injection point on 17+, else by gdb; then radosgw stopped so
#   that the body stops once the sockets are full): the cluster restarts,
#   no object exists under the name, and the file is archived afterwards,
#   byte-identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Compare;
use File::Copy;
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use S3Test;
use Test::More;
use Time::HiRes qw(time);

S3Test::skip_all_unless_available(proxy => 1);

my $s3 = S3Test->start(proxy => 1);
my $bucket = $s3->bucket;
my $prefix = 'failures/main';
my $direct = $s3->endpoint;
my $proxy = $s3->proxy_endpoint;
my $wrong_secret = 'WrongSecretKeyForWalvault0000000000000000';
my $tmp = PostgreSQL::Test::Utils::tempdir('s3files');

$ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
$ENV{AWS_SECRET_ACCESS_KEY} = $wrong_secret;

# 16 MB segments: a PUT's body is larger than what the sockets hold.  One
# worker, so that the one gdb holds is the one that archives; no readahead,
# so that a file is archived only when the server's archiver asks for it
# (the counters each case checks rely on it).
my $node = PostgreSQL::Test::Cluster->new('s3failures');
$node->init(allows_streaming => 1);
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_url = 's3://$bucket/$prefix'
pg_walvault.s3_endpoint = '$direct'
pg_walvault.s3_uri_style = path
pg_walvault.s3_connect_timeout = '1s'
pg_walvault.s3_stall_timeout = '2s'
pg_walvault.max_workers = 1
pg_walvault.min_workers = 1
pg_walvault.readahead = 0
restart_after_crash = on
wal_keep_size = '8GB'
max_wal_size = '8GB'
checkpoint_timeout = '1h'
log_line_prefix = '%m [%p] %b '
});
my $status_dir = $node->data_dir . '/pg_wal/archive_status';

sub start_node
{
	$node->start;
	$node->safe_psql('postgres',
		'CREATE EXTENSION IF NOT EXISTS pg_walvault; CREATE TABLE IF NOT EXISTS filler (i int)');
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'"
	) or die 'the worker did not start';
	return;
}

sub query { return $node->safe_psql('postgres', $_[0]); }

# Make one segment ready; returns its name.
sub make_segment
{
	my $name = query(
		'INSERT INTO filler VALUES (1); SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
	query('SELECT pg_switch_wal()');
	return $name;
}

sub is_ready { return -f "$status_dir/$_[0].ready"; }

sub wait_all_archived
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
	) or die 'timed out waiting for archiving';
	return;
}

sub stat_of { return query("SELECT $_[0] FROM pg_stat_walvault"); }

# Wait for a failure after $failed whose error matches the SQL pattern.
sub wait_failure
{
	my ($failed, $like) = @_;
	$node->poll_query_until('postgres',
		"SELECT failed_count > $failed AND last_error LIKE '$like' FROM pg_stat_walvault"
	) or die "no failure like $like: " . stat_of('last_error');
	return stat_of('last_error');
}

# The server's archiver gave up a file for now (after three attempts): no
# further attempt until new WAL or a minute passes.
sub wait_archiver_resting
{
	my ($file, $offset) = @_;
	$node->wait_for_log(
		qr/WARNING:  archiving write-ahead log file "\Q$file\E" failed too many times, will try again later/,
		$offset);
	return;
}

# Parameters, and a reload that every process has seen: the postmaster
# signals them all before it forks a new backend.
sub set_and_reload
{
	my (%set) = @_;
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = '$set{$_}'\n" } sort keys %set));
	$node->reload;
	my $cond = join(' AND ',
		map { "current_setting('$_') = '$set{$_}'" } sort keys %set);
	$node->poll_query_until('postgres', "SELECT $cond")
	  or die "settings not taken: $cond";
	return;
}

# The object of file under the prefix is byte-identical to pg_wal/file.
sub object_is_segment
{
	my ($file, %opt) = @_;
	my $got = "$tmp/$file.got";
	my $st = $s3->get_object("$prefix/$file", $got, %opt);
	return 0 unless $st == 200;
	my $same = compare($got, $node->data_dir . "/pg_wal/$file") == 0;
	unlink $got;
	return $same;
}

###
### A wrong secret key: refused, never shown; the right one after a restart
###
start_node();
my $file = make_segment();
my $error = wait_failure(0, '%SignatureDoesNotMatch%');
like($error, qr/HTTP 403 SignatureDoesNotMatch/,
	'wrong secret: last_error gives the HTTP status and the code');
ok($node->log_contains(qr/HINT:  Check the secret access key/),
	'wrong secret: the log says what to check');
ok(is_ready($file), 'wrong secret: the segment stays ready');
my $views = query(
	q{SELECT string_agg(t, ' ') FROM (
	SELECT row_to_json(s)::text AS t FROM pg_stat_walvault s
	UNION ALL SELECT row_to_json(w)::text FROM pg_stat_walvault_workers w
	UNION ALL SELECT row_to_json(st)::text FROM pg_stat_walvault_store st
	UNION ALL SELECT row_to_json(a)::text FROM pg_stat_activity a
	UNION ALL SELECT row_to_json(g)::text FROM pg_settings g WHERE name LIKE 'pg_walvault.%') x});
like($views, qr/SignatureDoesNotMatch/, 'the views show the error');
unlike($views, qr/\Q$wrong_secret\E/, 'the views never show the secret');

$node->stop;
$ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
start_node();
wait_all_archived();
ok(object_is_segment($file),
	'right secret after a restart: archived, byte-identical');

###
### archive_url and archive_directory both set
###
my $dir = $node->basedir . '/archive';
make_path($dir);
my $offset = -s $node->logfile;
set_and_reload('pg_walvault.archive_directory' => $dir);
$node->wait_for_log(
	qr/WARNING:  both pg_walvault.archive_directory and pg_walvault.archive_url are set/,
	$offset);
ok(1, 'both set: a WARNING at reload');
my $failed = stat_of('failed_count');
$file = make_segment();
wait_failure($failed,
	'both pg_walvault.archive_directory and pg_walvault.archive_url are set%');
ok(is_ready($file), 'both set: the segment stays ready');
set_and_reload('pg_walvault.archive_directory' => '');
make_segment();
wait_all_archived();
ok(object_is_segment($file), 'only archive_url again: archived in the store');
is(scalar(grep { !/^\.\.?$/ } do { opendir(my $d, $dir); readdir($d) }),
	0, 'nothing went to the directory');

###
### A bucket that does not exist, then created
###
my $missing = 'walvault-missing';
set_and_reload('pg_walvault.archive_url' => "s3://$missing/$prefix");
$failed = stat_of('failed_count');
$file = make_segment();
$error = wait_failure($failed, '%NoSuchBucket%');
like($error, qr/HTTP 404 NoSuchBucket/, 'missing bucket: NoSuchBucket');
ok(is_ready($file), 'missing bucket: the segment stays ready');
$s3->create_bucket($missing);
make_segment();
wait_all_archived();
ok(object_is_segment($file, bucket => $missing),
	'bucket created: archived, byte-identical');
set_and_reload('pg_walvault.archive_url' => "s3://$bucket/$prefix");

###
### radosgw stopped, then started
###
$s3->stop_rgw;
$failed = stat_of('failed_count');
$file = make_segment();
$error = wait_failure($failed, '%onnect%');
like($error, qr/Couldn't connect to server|Connection refused/,
	'radosgw stopped: a connection error');
ok(is_ready($file), 'radosgw stopped: the segment stays ready');
$s3->start_rgw;
make_segment();
wait_all_archived();
ok(object_is_segment($file), 'radosgw started again: archived, byte-identical');

###
### Two 500 answers: retried within the request
###
set_and_reload('pg_walvault.s3_endpoint' => $proxy);
$failed = stat_of('failed_count');
my $retries = query('SELECT retries FROM pg_stat_walvault_store');
$s3->fail_next(2);
$file = make_segment();
wait_all_archived();
is($s3->failures_left, 0, '500 twice: both answers were given');
cmp_ok(query('SELECT retries FROM pg_stat_walvault_store'),
	'>=', $retries + 2, '500 twice: both requests were tried again');
is(stat_of('failed_count'), $failed, '500 twice: no failure counted');
ok(object_is_segment($file), '500 twice: archived, byte-identical');

###
### radosgw stalled: the request is given up in bounded time
###
set_and_reload('pg_walvault.s3_endpoint' => $direct);
$failed = stat_of('failed_count');
$s3->sigstop;
my $t0 = time;
$file = make_segment();
$error = wait_failure($failed, '%');
my $elapsed = time - $t0;
$s3->sigcont;
cmp_ok($elapsed, '<', 30, sprintf('stalled store: failed after %.1f s', $elapsed));
like($error, qr/Operation too slow|timed out/i, 'stalled store: a timeout');
ok(is_ready($file), 'stalled store: the segment stays ready');
make_segment();
wait_all_archived();
ok(object_is_segment($file), 'store resumed: archived, byte-identical');

###
### Another object under the name of the next segment
###
my $junk = "$tmp/junk";
open(my $fh, '>', $junk) or die "$junk: $!";
print $fh "not this segment\n" x 1000;
close $fh;
$file = query(
	'INSERT INTO filler VALUES (1); SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
is($s3->put_object("$prefix/$file", $junk), 200, 'an object of another content put under the next name');
$failed = stat_of('failed_count');
$offset = -s $node->logfile;
query('SELECT pg_switch_wal()');
$error = wait_failure($failed, '%already exists with different content%');
like($error, qr/archive object "\Q$file\E" already exists with different content/,
	'different content: the error names the object');
wait_archiver_resting($file, $offset);
is($s3->get_object("$prefix/$file", "$tmp/back"), 200, 'the object is still there');
is(compare("$tmp/back", $junk), 0, 'different content: the object was not overwritten');
ok(is_ready($file), 'different content: the segment stays ready');

# Then a copy of the segment cut short: the same bytes as far as it goes.
my $short = "$tmp/short";
copy($node->data_dir . "/pg_wal/$file", $short) or die "copy: $!";
truncate($short, 8 * 1024 * 1024) or die "truncate: $!";
is($s3->put_object("$prefix/$file", $short), 200, 'the object replaced by the first half of the segment');
$failed = stat_of('failed_count');
$offset = -s $node->logfile;
my @wake = (make_segment());
$error = wait_failure($failed, '%already exists with different content%');
wait_archiver_resting($file, $offset);
is($s3->get_object("$prefix/$file", "$tmp/back"), 200, 'the short object is still there');
is(compare("$tmp/back", $short), 0, 'a copy cut short: not overwritten');
ok(is_ready($file), 'a copy cut short: the segment stays ready');

# The object replaced by an identical copy (the server is at rest now: no
# attempt runs): archived, with nothing uploaded and no failure.
is($s3->put_object("$prefix/$file", $node->data_dir . "/pg_wal/$file"),
	200, 'the object replaced by a copy of the segment');
$failed = stat_of('failed_count');
my ($archived, $stored) = split /\|/, stat_of('archived_count, stored_bytes');
push @wake, make_segment();
wait_all_archived();
is(stat_of('archived_count'), $archived + 3, 'identical copy: counted archived');
my $wake_bytes = 0;
$wake_bytes += -s $node->data_dir . "/pg_wal/$_" for @wake;
is(stat_of('stored_bytes'), $stored + $wake_bytes,
	'identical copy: nothing uploaded for it');
is(stat_of('failed_count'), $failed, 'identical copy: no failure');

###
### An identical copy: a file archived already, asked for again
###
$file = $wake[0];
rename("$status_dir/$file.done", "$status_dir/$file.ready") or die "rename: $!";
($archived, $stored) = split /\|/, stat_of('archived_count, stored_bytes');
my $wake = make_segment();
wait_all_archived();
is(stat_of('archived_count'), $archived + 2, 'archived again: counted archived');
is(stat_of('stored_bytes'), $stored + -s $node->data_dir . "/pg_wal/$wake",
	'archived again: nothing uploaded for it');
is(stat_of('failed_count'), $failed, 'archived again: no failure');
ok(object_is_segment($file), 'archived again: the object is unchanged');

###
### kill -9 of the worker in the middle of the PUT's body
###
# Through the proxy: once the worker is dead, every request fails there
# until the store has been looked at.
set_and_reload('pg_walvault.s3_endpoint' => $proxy);
my $worker = query(
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker'");
my $hold = hold_before_put();
SKIP:
{
	skip "nothing can hold the worker before the PUT: $hold->{why}", 9
	  unless $hold->{how};

	$file = make_segment();
	my $why = $hold->{wait}->();
	skip "the worker could not be held before the PUT: $why", 9 if $why;
	ok(1, "the worker is held before the PUT of $file ($hold->{how})");

	# radosgw stops reading: the body stops once the sockets are full
	$s3->sigstop;
	$hold->{release}->();
	my ($rgw_queued, $sent_queued) = wait_body_stuck($worker);
	cmp_ok($rgw_queued, '>', 16384,
		"the body reached radosgw's socket ($rgw_queued bytes unread)");
	cmp_ok($sent_queued, '>', 0,
		"and the rest waits in the worker's socket ($sent_queued bytes)");
	# our own wait event from 17 on, the server's Extension before
	my $event = $node->pg_version >= 17 ? 'WalvaultUpload' : 'Extension';
	is(query("SELECT wait_event FROM pg_stat_activity WHERE pid = $worker"),
		$event, "the worker waits in $event");

	$s3->fail_all;
	$offset = -s $node->logfile;
	kill 'KILL', $worker or die "kill $worker: $!";
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$offset);
	ok($node->log_contains(qr/\(PID $worker\) was terminated by signal 9/, $offset),
		'the worker was killed, the cluster restarts');
	$s3->sigcont;
	# radosgw reads what was sent, up to the end of the connection
	wait_rgw_drained();
	is(join(' ', $s3->list_keys("$prefix/$file")), '',
		'after the kill: no object under the name');
	ok(is_ready($file), 'after the kill: the segment stays ready');

	$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'no restart';
	$s3->stop_failing;
	make_segment();
	wait_all_archived();
	ok(object_is_segment($file), 'after the restart: archived, byte-identical');
	is(join(' ', $s3->list_keys("$prefix/$file")), "$prefix/$file",
		'one object under the name');
}

# The secrets in no log line
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$wrong_secret\E/, 'the wrong secret is not in the log');
my $secret = $s3->secret_key;
unlike($log, qr/\Q$secret\E/, 'the right secret is not in the log');

$node->stop;
$s3->stop;
done_testing();

# How to hold the worker just before its PUT: the injection point on 17+
# servers built with them, else gdb.  Returns { how, wait, release } or
# { why }; wait returns '' once the worker is held, or why it cannot be.
sub hold_before_put
{
	if ($node->pg_version >= 17
		&& query("SELECT count(*) FROM pg_available_extensions WHERE name = 'injection_points'"))
	{
		query('CREATE EXTENSION injection_points');
		query("SELECT injection_points_attach('walvault-before-upload', 'wait')");
		return {
			how => 'injection point walvault-before-upload',
			wait => sub {
				$node->poll_query_until('postgres',
					"SELECT wait_event = 'walvault-before-upload' FROM pg_stat_activity WHERE pid = $worker")
				  or die 'the worker did not reach the injection point';
				return '';
			},
			release => sub {
				query("SELECT injection_points_detach('walvault-before-upload')");
				query("SELECT injection_points_wakeup('walvault-before-upload')");
			},
		};
	}

	my ($gdb) = grep { -x } map { "$_/gdb" } split /:/, $ENV{PATH};
	return { why => 'no injection points, and gdb is not installed' }
	  unless $gdb;
	# gdb reads the library's symbols from the file on disk: installed
	# again since the server loaded it (another tree installed into the
	# same server), its addresses are another build's
	my $wrong_library =
	  'pg_walvault.so was installed again after the server loaded it';
	return { why => $wrong_library }
	  if slurp_file("/proc/$worker/maps") =~ m{/pg_walvault\.so \(deleted\)};
	my ($in, $out, $err) = ('', '', '');
	my $timer = IPC::Run::timer($PostgreSQL::Test::Utils::timeout_default);
	my $h = IPC::Run::start([ $gdb, '-q', '-nx', '-p', $worker ],
		'<', \$in, '>', \$out, '2>', \$err, $timer);
	$in .= join('',
		map { "$_\n" } (
			'set pagination off',
			'set confirm off',
			'handle SIGUSR1 SIGUSR2 SIGHUP SIGINT SIGTERM SIGURG SIGALRM SIGPIPE nostop noprint pass',
			'break wv_s3_put',
			'echo BREAKPOINT-SET\n'));
	$h->pump
	  until $out =~ /BREAKPOINT-SET/
	  || $err =~ /ptrace|No symbol/
	  || $timer->is_expired;
	if ($out !~ /BREAKPOINT-SET/ || $out =~ /pending|not defined/i || $err =~ /ptrace|No symbol/)
	{
		$h->kill_kill;
		return { why => "gdb cannot stop the worker: $err" };
	}
	$in .= "continue\n";
	$h->pump while $in ne '';
	return {
		how => 'gdb, breakpoint on wv_s3_put',
		wait => sub {
			$h->pump
			  until $out =~ /Breakpoint 1,|not at the expected address/
			  || $timer->is_expired;
			return '' if $out =~ /Breakpoint 1,/;
			# interrupt the worker to take the breakpoint out, and leave
			# it: never leave it stopped under a gdb that goes away
			$timer->start(60);
			$h->signal('INT');
			$in .= "delete\ndetach\nquit\n";
			$h->finish;
			return $wrong_library
			  if $out =~ /not at the expected address/;
			die "gdb: the worker did not stop: $out$err";
		},
		release => sub {
			$in .= "delete\ndetach\nquit\n";
			$h->finish;
		},
	};
}

# Established TCP connections: [recv-q, send-q, local port, peer port, pid]
sub tcp_connections
{
	my @conns;
	foreach my $line (split /\n/, `ss -Htnp state established`)
	{
		next
		  unless $line =~
		  /^\s*(\d+)\s+(\d+)\s+\S+:(\d+)\s+\S+:(\d+)\s*(?:.*pid=(\d+))?/;
		push @conns, [ $1, $2, $3, $4, $5 ];
	}
	return @conns;
}

# Wait until the worker's PUT can move no further: bytes wait unread in
# radosgw's sockets (far more than any request's headers) and in the
# worker's own socket.  Returns both amounts.
sub wait_body_stuck
{
	my ($pid) = @_;
	my ($rgw_port, $proxy_port) = ($s3->port, $s3->proxy_port);
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my ($rgw_queued, $sent_queued) = (0, 0);
		foreach my $c (tcp_connections())
		{
			$rgw_queued += $c->[0] if $c->[2] == $rgw_port;
			$sent_queued += $c->[1]
			  if defined $c->[4] && $c->[4] == $pid && $c->[3] == $proxy_port;
		}
		return ($rgw_queued, $sent_queued)
		  if $rgw_queued > 16384 && $sent_queued > 0;
		Time::HiRes::usleep(50_000);
	}
	die 'the PUT body did not get stuck';
}

# Wait until radosgw has read everything sent to it.
sub wait_rgw_drained
{
	my $rgw_port = $s3->port;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my $queued = 0;
		$queued += $_->[0] for grep { $_->[2] == $rgw_port } tcp_connections();
		return if $queued == 0;
		Time::HiRes::usleep(50_000);
	}
	die 'radosgw did not read what was sent to it';
}

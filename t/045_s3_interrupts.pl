# A worker in the middle of a request to the object store still answers
# the server: DROP DATABASE does not wait for it, a terminate makes it leave
# (its file goes back to the queue), and a reload that moves the archive
# stops the transfer so that the file goes to the new place.  The request
# is held by a stopped radosgw (SIGSTOP): the kernel still accepts the
# connection and the bytes, nobody answers.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use S3Test;
use Test::More;
use WalvaultTest;

S3Test::skip_all_unless_available();

my $s3 = S3Test->start();
$ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
$ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;

my $bucket = $s3->bucket;
my $endpoint = $s3->endpoint;
my $node = walvault_node(
	's3_interrupts',
	hold => 1,
	conf => qq{
pg_walvault.archive_url = 's3://$bucket/first'
pg_walvault.s3_endpoint = '$endpoint'
pg_walvault.s3_uri_style = 'path'
pg_walvault.s3_stall_timeout = '10min'
pg_walvault.max_workers = 1
pg_walvault.min_workers = 1
pg_walvault.readahead = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');

make_segments($node, 2);
wait_all_archived($node);
is($node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	'0', 'archiving to the store works');

# The file the next segment switch makes ready, and the worker that takes it.
my $seg = $node->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_lsn())');

# Wait until a worker (not the archiver itself) is busy with $seg; returns
# its pid.
sub busy_worker
{
	my ($file) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'archiving' AND current_file = '$file'"
	) or die "no worker busy with $file";
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND current_file = '$file'"
	);
}

$s3->sigstop;
make_segments($node, 1);
my $pid = busy_worker($seg);
ok($pid > 0, 'a worker is held in a request to the stopped store');

# A procsignal barrier is absorbed in the middle of the request.
$node->safe_psql('postgres', 'CREATE DATABASE victim');
$node->safe_psql('postgres', 'DROP DATABASE victim', timeout => 60);
ok(1, 'DROP DATABASE completes while the worker is held');
is($node->safe_psql('postgres',
	"SELECT current_file FROM pg_stat_walvault_workers WHERE pid = $pid"),
	$seg, 'and the worker is still in its request');

# A terminate: the worker leaves now, its file goes back to the queue.
my $offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->wait_for_log(
	qr/FATAL:  terminating the transfer of "$seg" because of a shutdown request/,
	$offset);
ok(1, 'a terminated worker leaves in the middle of its request');
my $pid2 = busy_worker($seg);
isnt($pid2, $pid, 'another worker takes the file again');

# A reload that moves the archive stops the transfer, while the store is
# still held: the reload was applied in the middle of the request.
$offset = -s $node->logfile;
$node->append_conf('postgresql.conf',
	"pg_walvault.archive_url = 's3://$bucket/second'");
$node->reload;
$node->wait_for_log(
	qr/the transfer of "$seg" was stopped because the object store's settings changed/,
	$offset);
ok(1, 'a reload that moves the archive stops the transfer at once');

$s3->sigcont;
wait_all_archived($node);
ok((grep { $_ eq "second/$seg" } $s3->list_keys('second/')),
	'the file is archived to the new place');
ok(!(grep { $_ eq "first/$seg" } $s3->list_keys('first/')),
	'and not to the old one');

# A reload that changes nothing of the store lets the transfer go on.
$seg = $node->safe_psql('postgres',
	'SELECT pg_walfile_name(pg_current_wal_lsn())');
my $failed = $node->safe_psql('postgres',
	'SELECT failed_count FROM pg_stat_walvault');
$s3->sigstop;
make_segments($node, 1);
$pid = busy_worker($seg);
$node->append_conf('postgresql.conf', 'pg_walvault.readahead = 8');
$node->reload;
# the worker has seen the reload once its setting is visible to it: a
# backend started after the reload shows the same file
$node->poll_query_until('postgres', "SELECT current_setting('pg_walvault.readahead') = '8'")
  or die 'reload not seen';
$s3->sigcont;
wait_all_archived($node);
is($node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	$failed, 'a reload that keeps the store lets the transfer finish');
ok((grep { $_ eq "second/$seg" } $s3->list_keys('second/')),
	'and the file is archived');

$node->stop;
$s3->stop;
done_testing();

# pg_walvault.archive_url: archiving into a real S3 store (Ceph's RADOS
# gateway, t/S3Test.pm), with path-style URIs, under a prefix several
# levels deep.
#
# - Under pgbench, with pg_switch_wal() mixed in, one round for each
#   compression (off, zstd, lz4, gzip; switched by a reload between
#   rounds): every file the server marked done is in the store under
#   PREFIX/<file><suffix of its round>, and nothing else is; each object,
#   decompressed with the zstd, lz4 and gzip tools, is byte-identical to
#   the file in pg_wal (wal_keep_size keeps them all).
# - pg_stat_walvault and pg_stat_walvault_store agree with the store: as
#   many files as objects, stored_bytes the sum of their sizes, at least a
#   LIST and a PUT per file, every byte sent, and one kept-alive
#   connection per process that archived.
# - Point-in-time recovery from the store to a named restore point, with
#   pg_walvault_restore -u as restore_command, serially and with -j 4: the
#   rows are the primary's at the target, not its final ones.
# - 64 MB segments with zstd, with 32 MB of data that does not compress:
#   the compressed object is larger than what a worker keeps in memory
#   (16 MB), so the payload is produced twice (once to hash, once to send);
#   and uncompressed, read twice from the file.  Byte-identical.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Compare;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use S3Test;
use Test::More;

S3Test::skip_all_unless_available();

my $s3 = S3Test->start;
# the server (and the restore_command it runs) finds the keys in the
# environment it inherits
$ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
$ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
my $bucket = $s3->bucket;
my $endpoint = $s3->endpoint;
my $tmp = PostgreSQL::Test::Utils::tempdir('s3objects');

my %suffix = (off => '', zstd => '.zst', lz4 => '.lz4', gzip => '.gz');
my %unpack = (
	'.zst' => [ 'zstd', '-d', '-q', '-c' ],
	'.lz4' => [ 'lz4', '-d', '-q', '-c' ],
	'.gz' => [ 'gzip', '-d', '-c' ]);

# A primary archiving into s3://BUCKET/PREFIX, keeping every segment in
# pg_wal so that each object can be compared with its file.
sub s3_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1,
		extra => [ '--wal-segsize=' . $opt{segsize} ]);
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_url = 's3://$bucket/$opt{prefix}'
pg_walvault.s3_endpoint = '$endpoint'
pg_walvault.s3_uri_style = path
pg_walvault.compression = '$opt{compression}'
pg_walvault.max_workers = $opt{workers}
pg_walvault.min_workers = $opt{workers}
wal_keep_size = '8GB'
max_wal_size = '8GB'
checkpoint_timeout = '1h'
log_line_prefix = '%m [%p] %b '
});
	$node->{prefix} = $opt{prefix};
	return $node;
}

sub start_node
{
	my ($node, $workers) = @_;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
	$node->poll_query_until('postgres',
		"SELECT count(*) = $workers FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'"
	) or die 'the pool did not start';
	return;
}

sub wait_all_archived
{
	my ($node) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
	) or die 'timed out waiting for archiving';
	return;
}

# Files the server marked archived.
sub done_files
{
	my ($node) = @_;
	my $dir = $node->data_dir . '/pg_wal/archive_status';
	opendir(my $dh, $dir) or die "opendir $dir: $!";
	my @done = sort map { s/\.done$//r } grep { /\.done$/ } readdir($dh);
	closedir $dh;
	return @done;
}

# Set a parameter and reload; returns once a new backend sees the value.
# The postmaster signals every process before it forks a backend again, and
# an archive worker reloads before it takes its next file: from then on,
# every file is archived with the new value.
sub set_and_reload
{
	my ($node, $name, $value) = @_;
	$node->append_conf('postgresql.conf', "$name = '$value'");
	$node->reload;
	$node->poll_query_until('postgres',
		"SELECT current_setting('$name') = '$value'")
	  or die "$name = '$value' not taken";
	return;
}

# Fetch the object of file (stored with suffix), decompress it, compare it
# with pg_wal/file.  Returns '' if identical, else what is wrong; adds the
# object's size to $$bytes.
sub check_object
{
	my ($node, $file, $suffix, $bytes) = @_;
	my $key = "$node->{prefix}/$file$suffix";
	my $got = "$tmp/$file$suffix";
	my $status = $s3->get_object($key, $got);
	return "$key: HTTP $status" unless $status == 200;
	$$bytes += -s $got if $bytes;
	my $plain = $got;
	if ($suffix ne '')
	{
		$plain = "$tmp/$file";
		IPC::Run::run($unpack{$suffix}, '<', $got, '>', $plain)
		  or return "$key does not decompress with $unpack{$suffix}[0]";
	}
	my $same = compare($plain, $node->data_dir . "/pg_wal/$file") == 0;
	unlink $got, $plain;
	return $same ? '' : "$key differs from pg_wal/$file";
}

# Compare every file of @files with its object; returns the problems.
sub check_objects
{
	my ($node, $suffix, $bytes, @files) = @_;
	return join(', ', grep { $_ ne '' }
		  map { check_object($node, $_, $suffix, $bytes) } @files);
}

###
### WAL of pgbench, one round per compression, one prefix
###
my $primary = s3_node('s3primary', segsize => 1, workers => 4,
	prefix => 'clusters/eu/main/wal', compression => 'off');
start_node($primary, 4);

# pgbench with a pg_switch_wal() now and then among its transactions
my $switch = "$tmp/switch.sql";
open(my $fh, '>', $switch) or die "$switch: $!";
print $fh "SELECT pg_switch_wal();\n";
close $fh;
sub pgbench_round
{
	my ($label) = @_;
	$primary->command_ok(
		[
			'pgbench', '-n', '-c', '4', '-j', '2', '-t', '400',
			'-b', 'tpcb-like@100', '-f', "$switch\@1", 'postgres'
		],
		"pgbench with pg_switch_wal(), $label");
	$primary->safe_psql('postgres', 'SELECT pg_switch_wal()');
	return;
}

my $rows_query = q{SELECT (SELECT md5(string_agg(abalance::text, ',' ORDER BY aid)) FROM pgbench_accounts),
	(SELECT count(*) FROM pgbench_history),
	(SELECT md5(string_agg(h::text, ',' ORDER BY h::text)) FROM pgbench_history h)};

my %round_of;    # file => compression it was archived with
my $object_bytes = 0;    # sizes of the objects
my ($target_rows, $final_rows);
foreach my $method ('off', 'zstd', 'lz4', 'gzip')
{
	set_and_reload($primary, 'pg_walvault.compression', $method)
	  if $method ne 'off';
	if ($method eq 'off')
	{
		$primary->command_ok([ 'pgbench', '-i', '-s', '1', '-q', 'postgres' ],
			'pgbench -i');
		$primary->backup('base');
	}
	if ($method eq 'gzip')
	{
		# the target of the recovery: after the lz4 round, before gzip's
		$target_rows = $primary->safe_psql('postgres', $rows_query);
		$primary->safe_psql('postgres',
			"SELECT pg_create_restore_point('walvault_target')");
	}
	pgbench_round($method);
	wait_all_archived($primary);
	my @new = grep { !exists $round_of{$_} } done_files($primary);
	$round_of{$_} = $method for @new;
	cmp_ok(scalar(grep { /^[0-9A-F]{24}$/ } @new), '>=', 3,
		"$method: segments archived during the round");
	is(check_objects($primary, $suffix{$method}, \$object_bytes, @new), '',
		"$method: every object byte-identical to its file (" . scalar(@new)
		  . ' files)');
}
$final_rows = $primary->safe_psql('postgres', $rows_query);
isnt($final_rows, $target_rows, 'the rows changed after the target');
ok((grep { /\.backup$/ && $round_of{$_} eq 'off' } keys %round_of),
	'the backup history file was archived too');

# The store holds exactly the files the server marked done, each under its
# round's name (no temporary object, no duplicate, nothing elsewhere).
my @expected = sort map { "$primary->{prefix}/$_$suffix{$round_of{$_}}" }
  keys %round_of;
# and the archive's marker (t/046)
@expected = sort(@expected, "$primary->{prefix}/pg_walvault.archive");
my @keys = $s3->list_keys('clusters/');
is_deeply(\@keys, \@expected,
	'the store holds exactly the archived files under the prefix, named by their compression'
);

# The counters against the store
my $file_bytes = 0;
$file_bytes += -s $primary->data_dir . "/pg_wal/$_" for keys %round_of;
my ($archived, $archived_bytes, $stored, $failed) = split /\|/,
  $primary->safe_psql('postgres',
	'SELECT archived_count, archived_bytes, stored_bytes, failed_count FROM pg_stat_walvault'
  );
is($archived, scalar(keys %round_of), 'archived_count: one per object');
is($archived_bytes, $file_bytes, 'archived_bytes: the files\' sizes');
is($stored, $object_bytes, 'stored_bytes: the objects\' sizes');
is($failed, 0, 'no failure');

my ($requests, $bytes_sent, $connections, $retries, $failed_requests,
	$store_url)
  = split /\|/,
  $primary->safe_psql('postgres',
	'SELECT requests, bytes_sent, connections, retries, failed_requests, archive_url FROM pg_stat_walvault_store'
  );
is($store_url, "s3://$bucket/$primary->{prefix}",
	'pg_stat_walvault_store: the archive URL');
cmp_ok($requests, '>=', 2 * $archived,
	'pg_stat_walvault_store: a LIST and a PUT per file at least');
cmp_ok($bytes_sent, '>=', $object_bytes,
	'pg_stat_walvault_store: every byte of the objects sent');
is("$retries $failed_requests", '0 0', 'no retry, no failed request');
my $archiving = $primary->safe_psql('postgres',
	'SELECT count(*) FROM pg_stat_walvault_workers WHERE files_archived > 0');
cmp_ok($archiving, '>=', 1, "$archiving processes archived files");
ok( $connections >= 1 && $connections <= $archiving && $connections <= 4,
	"one kept-alive connection per process that archived ($connections connections, $archiving processes, $requests requests)"
);

###
### Point-in-time recovery from the store, serially and with -j 4
###
my $bindir = $primary->config_data('--bindir');
foreach my $jobs ('', '-j 4 -v')
{
	my $label = $jobs eq '' ? 'serial' : '-j 4';
	my $restored = PostgreSQL::Test::Cluster->new('s3restored' . ($jobs ? 'j' : ''));
	$restored->init_from_backup($primary, 'base');
	$restored->append_conf(
		'postgresql.conf', qq{
archive_mode = off
restore_command = '$bindir/pg_walvault_restore $jobs -u s3://$bucket/$primary->{prefix} --s3-endpoint $endpoint --s3-uri-style path %f %p'
recovery_target_name = 'walvault_target'
recovery_target_action = 'promote'
});
	$restored->set_recovery_mode;
	$restored->start;
	$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die "$label: recovery did not end";
	is($restored->safe_psql('postgres', $rows_query),
		$target_rows, "$label: the rows are the primary's at the target");
	ok( $restored->log_contains(
			qr/recovery stopping at restore point "walvault_target"/),
		"$label: recovery stopped at the restore point");
	my @restored = (slurp_file($restored->logfile) =~
		  /restored log file "([0-9A-F]{24})" from archive/g);
	my %methods = map { $round_of{$_} // '?' => 1 } @restored;
	is(join(' ', sort keys %methods), 'gzip lz4 off zstd',
		"$label: segments of every compression restored from the store ("
		  . scalar(@restored) . ')');
	if ($jobs)
	{
		ok($restored->log_contains(qr/restored "[^"]+" from the prefetch spool/),
			"$label: segments served by the prefetcher");
	}
	$restored->stop;
}

###
### 64 MB segments that do not compress: larger than a worker keeps in memory
###
my $big = s3_node('s3big', segsize => 64, workers => 2,
	prefix => 'big/64mb', compression => 'zstd');
start_node($big, 2);
$big->safe_psql('postgres',
	'CREATE TABLE noise (b bytea); ALTER TABLE noise ALTER COLUMN b SET STORAGE EXTERNAL');
# zstd: 32 MB of SHA-512 output, which looks random to a compressor, in
# one segment; off: any segment is 64 MB
my %fill = (
	zstd => q{INSERT INTO noise SELECT (SELECT string_agg(sha512(int4send(g) || int4send(i)), '') FROM generate_series(1, 4096) g) FROM generate_series(1, 128) i},
	off => q{INSERT INTO noise VALUES (NULL)});
my %big_round;
foreach my $method ('zstd', 'off')
{
	set_and_reload($big, 'pg_walvault.compression', $method)
	  if $method ne 'zstd';
	$big->safe_psql('postgres', "$fill{$method}; SELECT pg_switch_wal()");
	wait_all_archived($big);
	my @new = grep { !exists $big_round{$_} } done_files($big);
	$big_round{$_} = $method for @new;
	my @full = grep { /^[0-9A-F]{24}$/ && -s $big->data_dir . "/pg_wal/$_" == 64 * 1024 * 1024 } @new;
	cmp_ok(scalar(@full), '>=', 1, "64 MB segments, $method: archived");
	my $largest = 0;
	foreach my $f (@full)
	{
		my $r = $s3->request(method => 'HEAD', key => "big/64mb/$f$suffix{$method}");
		my ($len) = ($r->{body} =~ /^content-length:\s*(\d+)/mi);
		$largest = $len if defined $len && $len > $largest;
	}
	cmp_ok($largest, '>', 16 * 1024 * 1024,
		"64 MB segments, $method: an object larger than 16 MB ($largest bytes)");
	is(check_objects($big, $suffix{$method}, undef, @new), '',
		"64 MB segments, $method: every object byte-identical to its file ("
		  . scalar(@new) . ' files)');
}
is($big->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault'),
	'0', '64 MB segments: no failure');

$big->stop;
$primary->stop;
$s3->stop;
done_testing();

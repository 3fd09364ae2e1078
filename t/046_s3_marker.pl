# The archive marker in an object store (issue 14, finding 3; t/054 for a
# directory): the module uploads PREFIX/pg_walvault.archive before the
# first file, with If-None-Match, and refuses a prefix whose marker names
# another system; pg_walvault_restore -u says "not found" only under a
# prefix that carries the marker of the data directory's system.
use strict;
use warnings;
use File::Path qw(make_path);
use File::Copy;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use S3Test;
use Test::More;

S3Test::skip_all_unless_available();

my $FATAL = 255;
my $s3 = S3Test->start;
$ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
$ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
my $bucket = $s3->bucket;
my $endpoint = $s3->endpoint;
my $tmp = PostgreSQL::Test::Utils::tempdir('s3marker');

sub s3_node
{
	my ($name, $prefix) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1, extra => ['--wal-segsize=1']);
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_url = 's3://$bucket/$prefix'
pg_walvault.s3_endpoint = '$endpoint'
pg_walvault.s3_uri_style = path
log_line_prefix = '%m [%p] %b '
});
	return $node;
}

sub marker_text
{
	my ($key) = @_;
	my $status = $s3->get_object($key, "$tmp/marker");
	return undef if $status != 200;
	return slurp_file("$tmp/marker");
}

# --- the module uploads the marker before the first file
my $node = s3_node('primary', 'main');
$node->start;
my $sysid = $node->safe_psql('postgres',
	'SELECT system_identifier FROM pg_control_system()');
my $lsn = $node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->poll_query_until('postgres',
	'SELECT archived_count > 0 FROM pg_stat_archiver')
  or die 'nothing archived';
like(marker_text('main/pg_walvault.archive'),
	qr/^system_identifier = $sysid$/m,
	'the prefix carries a marker with the system identifier');

# --- restore: "not found" only under a prefix with the marker
my $data = "$tmp/data";
make_path("$data/global", "$data/pg_wal");
copy($node->data_dir . '/PG_VERSION', "$data/PG_VERSION") or die;
copy($node->data_dir . '/global/pg_control', "$data/global/pg_control")
  or die;

sub run_restore
{
	my ($prefix, @args) = @_;
	my ($out, $err) = ('', '');
	my @cmd = ('pg_walvault_restore', '-u', "s3://$bucket/$prefix",
		'--s3-endpoint', $endpoint, '--s3-uri-style', 'path', @args,
		'0000000100000000000000F0', 'pg_wal/RECOVERYXLOG');
	print("# Running: @cmd\n");
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err,
		init => sub { chdir $data or die; });
	print "# stderr:\n$err" =~ s/^/# /mgr if $err ne '';
	return ($? >> 8, $err);
}

my ($rc, $err) = run_restore('main');
is($rc, 1, 'a missing file under a marked prefix: not found (1)');
($rc, $err) = run_restore('mian');
is($rc, $FATAL, 'a mistyped prefix: error (255), not "not found"');
like($err, qr/has no archive marker "pg_walvault.archive"/,
	'the error says the marker is missing');
($rc, $err) = run_restore('mian', '--no-marker-check');
is($rc, 1, '--no-marker-check: not found (1)');

# --- another system's prefix is refused, its marker kept
my $other = s3_node('other', 'main');
$other->start;
$other->safe_psql('postgres', 'SELECT pg_switch_wal()');
$other->safe_psql('postgres', 'CREATE TABLE x AS SELECT 1; SELECT pg_switch_wal()');
$other->wait_for_log(
	qr/ERROR:  archive marker ".*main\/pg_walvault.archive" belongs to another database system/
);
is($other->safe_psql('postgres', 'SELECT archived_count FROM pg_stat_archiver'),
	'0', 'the other system archived nothing under that prefix');
like(marker_text('main/pg_walvault.archive'),
	qr/^system_identifier = $sysid$/m, 'the marker was not replaced');
$other->stop('immediate');

$node->stop;
$s3->stop;
done_testing();

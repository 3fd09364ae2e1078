# The archive directory is shared ground: what is there must be durable
# before it counts, is never replaced, and temporary files are removed only
# by their own cluster and host.
# - An identical copy found in the archive counts only once it is fsynced
#   (with its directory): if that fails, the file is not archived.
# - A file that appears between our check and our publish (another
#   cluster wrongly given the same directory) is never replaced: a test
#   holds the worker at that moment with an injection point (17+).
# - An entry planted under the name of a temporary file (a symbolic or a
#   hard link to a file elsewhere) is never written through: the worker
#   takes another name, and the file is archived all the same.
# - Stale temporary files are removed only when they are this cluster's,
#   on this host, and their writer is gone, whichever name the writer took.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use File::Copy;
use File::Path qw(make_path);
use Sys::Hostname;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

sub write_file
{
	my ($path, $content) = @_;
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh $content;
	close $fh;
	return;
}

my $node = walvault_node('dirsafety',
	conf => "pg_walvault.min_workers = 1\npg_walvault.max_workers = 1\npg_walvault.readahead = 0\n");
my $archive = $node->{walvault_archive};
my $status = $node->data_dir . '/pg_wal/archive_status';
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
make_segments($node, 2);
wait_all_archived($node);

###
### An identical copy that cannot be made durable is a failure
###
SKIP:
{
	skip 'root can open any file: the failure cannot be provoked', 4
	  if $> == 0;

	# the server asks again for a file in the archive (as after a crash
	# before it recorded the success); that copy cannot be opened for fsync
	my ($again) = grep { -f "$status/$_.done" } grep { /^[0-9A-F]{24}$/ }
	  archive_files($archive);
	chmod 0400, "$archive/$again" or die $!;
	my $failed = $node->safe_psql('postgres', 'SELECT failed_count FROM pg_stat_walvault');
	rename("$status/$again.done", "$status/$again.ready") or die $!;
	make_segments($node, 1);    # wakes the archiver
	ok( $node->poll_query_until('postgres',
			"SELECT failed_count > $failed AND last_failed_wal = '$again' FROM pg_stat_walvault"),
		'an identical copy that cannot be fsynced is not reported archived');
	like($node->safe_psql('postgres', 'SELECT last_error FROM pg_stat_walvault'),
		qr/could not open file ".*\Q$again\E": Permission denied/,
		'the error says why');
	ok(-f "$status/$again.ready", 'the server keeps the WAL file');

	chmod 0600, "$archive/$again" or die $!;
	wait_all_archived($node);
	ok(-f "$status/$again.done", 'once it can be fsynced, it counts');
}

###
### A file that appears just before we publish is never replaced
###
SKIP:
{
	skip 'injection points need PostgreSQL 17', 4 if $node->pg_version < 17;
	skip 'the server was built without injection points', 4
	  unless $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_available_extensions WHERE name = 'injection_points'");

	$node->safe_psql('postgres', 'CREATE EXTENSION injection_points');
	$node->safe_psql('postgres',
		"SELECT injection_points_attach('walvault-before-publish', 'wait')");
	make_segments($node, 1);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'walvault-before-publish'")
	  or die 'the worker did not stop before publishing';
	my $file = $node->safe_psql('postgres',
		"SELECT current_file FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'archiving'");
	ok(-f glob("$archive/.$file.walvault.*.tmp"), "the copy of $file waits as a temporary file");

	# another cluster's file of that name appears now
	write_file("$archive/$file", "another cluster's file\n");
	$node->safe_psql('postgres',
		"SELECT injection_points_detach('walvault-before-publish')");
	$node->safe_psql('postgres',
		"SELECT injection_points_wakeup('walvault-before-publish')");
	$node->wait_for_log(
		qr/archive file "\Q$archive\/$file\E" already exists with different content/);
	is(slurp_file("$archive/$file"), "another cluster's file\n",
		'the file that appeared was not replaced');
	ok(!glob("$archive/.$file.walvault.*.tmp"), 'our copy was removed');
	ok(-f "$status/$file.ready", 'the server keeps the WAL file');
	unlink "$archive/$file";
	wait_all_archived($node);
}

my $sysid = $node->safe_psql('postgres',
	'SELECT system_identifier FROM pg_control_system()');
my $host = substr(hostname(), 0, 64) =~ s/[^A-Za-z0-9-]/_/gr;

###
### A link planted under the name of our temporary file is not written through
###
# The one worker is idle; the segment being written now is the next one it
# archives, and its temporary file name is known in advance.
my $worker = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_walvault_workers WHERE role = 'archive worker' AND state = 'idle'");
die 'no idle worker' unless $worker;
my $victim = $node->basedir . '/victim';
for my $kind ('symlink', 'hard link')
{
	my $file = $node->safe_psql('postgres',
		'INSERT INTO walvault_filler VALUES (1); SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
	my $planted = "$archive/.$file.walvault.$sysid.$host.$worker.tmp";
	write_file($victim, "precious\n");
	chmod 0600, $victim or die $!;
	if ($kind eq 'symlink')
	{
		symlink($victim, $planted) or die "symlink: $!";
	}
	else
	{
		link($victim, $planted) or die "link: $!";
	}
	my $archived = $node->safe_psql('postgres',
		"SELECT files_archived FROM pg_stat_walvault_workers WHERE pid = $worker");
	my $wal = $node->data_dir . "/pg_wal/$file";
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	my $snap = $node->basedir . '/planted';
	mkdir $snap;
	copy($wal, "$snap/$file") or die "copy $file: $!";
	wait_all_archived($node);

	is( $node->safe_psql('postgres',
			"SELECT files_archived > $archived FROM pg_stat_walvault_workers WHERE pid = $worker"),
		't', "($kind) the worker whose temporary file name was taken archived $file");
	is(slurp_file($victim), "precious\n",
		"($kind) the file the planted $kind points to is untouched");
	ok(!-l "$archive/$file", "($kind) the archived file is not the planted link");
	ok((-l $planted || -f $planted) && slurp_file($planted) eq "precious\n",
		"($kind) the planted entry is left alone");
	unlink $planted;
	check_archived($archive, $snap, $file);
}

###
### Stale temporary files: only this cluster's, on this host, writer gone
###
my $live = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_walvault coordinator'");
my $dead = 4194304 + 1;    # above any pid Linux hands out
my %temp = (
	ours_dead => ".000000010000000000000071.walvault.$sysid.$host.$dead.tmp",
	ours_live => ".000000010000000000000072.walvault.$sysid.$host.$live.tmp",
	# the names taken when the first is not free
	ours_dead_other_name =>
	  ".000000010000000000000076.walvault.$sysid.$host.$dead.0123456789abcdef.tmp",
	ours_live_other_name =>
	  ".000000010000000000000077.walvault.$sysid.$host.$live.0123456789abcdef.tmp",
	other_cluster => ".000000010000000000000073.walvault.1$sysid.$host.$dead.tmp",
	other_host => ".000000010000000000000074.walvault.$sysid.other-host.$dead.tmp",
	unrelated => '.000000010000000000000075.tmp');
write_file("$archive/$_", "x") for values %temp;
$node->reload;    # the coordinator cleans up at every reload
$node->wait_for_log(qr/removed stale temporary file ".*\Q$temp{ours_dead}\E"/);
$node->wait_for_log(qr/removed stale temporary file ".*\Q$temp{ours_dead_other_name}\E"/);
ok(!-e "$archive/$temp{$_}",
	"this cluster's temporary file of a process that is gone is removed ($_)")
  for qw(ours_dead ours_dead_other_name);
ok(-e "$archive/$temp{$_}", "a temporary file of $_ is kept")
  for qw(ours_live ours_live_other_name other_cluster other_host unrelated);

$node->stop;
done_testing();

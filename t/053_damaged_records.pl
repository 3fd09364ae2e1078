# A byte changed anywhere in an archived segment stops recovery; it never
# ends it (issue 14, finding 2).
#
# The reproduction: eight bytes inverted inside a record on page 3 of a plain
# segment in the middle of the archive.  Only page headers were checked, so
# pg_walvault_restore restored the segment, replay met the record's bad CRC,
# took it for the end of the WAL and promoted, dropping every later
# transaction.  Now every record's CRC is checked as the file streams
# through the restore, the record that crosses into a segment is checked
# with the end of the segment before it, zeroes are accepted only after a
# WAL switch record, and compressed files carry a checksum of their content.
#
# A real server archives through pg_walvault into a directory, its
# compression changed on the way (lz4, then none, zstd, gzip: one archive of
# every format, whose records cross from one format into the next).  Then,
# one damage at a time: the program refuses the file (exit 255, a message
# naming it), and a point-in-time recovery from a base backup through
# restore_command stops with FATAL at that file, never completes archive
# recovery, and, once the file is repaired, recovers to the end.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Digest::SHA qw(sha256_hex);
use RestoreTest;
use S3Test;
use WalvaultTest;

my $SEG = 1024 * 1024;    # walvault_node's --wal-segsize=1
my $BLCKSZ = 8192;
my $FATAL = 255;

my $node = walvault_node('primary', hold => 0);
$node->start;
$node->safe_psql('postgres', 'CREATE TABLE t (i int, t text)');
$node->backup('base');

# Each phase: about three segments of inserts (their records cross segment
# ends), a logical message longer than a segment, and a WAL switch, whose
# zeroes fill the rest of the segment.  Returns what the table holds.
sub make_wal
{
	my ($n, @methods) = @_;
	my $row = 0;
	foreach my $method (@methods)
	{
		$n->append_conf('postgresql.conf',
			"pg_walvault.compression = '$method'");
		$n->reload;
		$n->poll_query_until('postgres',
			"SELECT current_setting('pg_walvault.compression') = '$method'")
		  or die "compression $method not taken";
		my ($from, $to) = ($row + 1, $row + 4000);
		$row = $to;
		$n->safe_psql('postgres',
			"INSERT INTO t SELECT g, repeat(md5(g::text), 20) FROM generate_series($from, $to) g"
		);
		$n->safe_psql('postgres',
			"SELECT pg_logical_emit_message(false, 'walvault', repeat('$method', 400000))"
		);
		$n->safe_psql('postgres', 'SELECT pg_switch_wal()');
		wait_all_archived($n);
	}
	my $rows = $n->safe_psql('postgres',
		"SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t");
	$n->safe_psql('postgres', 'SELECT pg_switch_wal()');
	wait_all_archived($n);
	return $rows;
}

my %method_of;
my $expected = make_wal($node, 'lz4', 'off', 'zstd', 'gzip');
$node->stop;

my $archive = $node->{walvault_archive};
my %suffix = (off => '', lz4 => '.lz4', zstd => '.zst', gzip => '.gz');
my %segments;    # method => names in order
foreach my $f (archive_files($archive))
{
	next unless $f =~ /^([0-9A-F]{24})(\.lz4|\.zst|\.gz)?$/;
	my $method = { '' => 'off', '.lz4' => 'lz4', '.zst' => 'zstd',
		'.gz' => 'gzip' }->{ $2 // '' };
	push @{ $segments{$method} }, $1;
	$method_of{$1} = $method;
}
note "$_: @{ $segments{$_} // [] }" for qw(lz4 off zstd gzip);
foreach my $method (qw(lz4 off zstd gzip))
{
	ok(@{ $segments{$method} // [] } >= 4,
		"at least four segments archived with compression $method");
}

# Run pg_walvault_restore in the data directory of the primary (its system
# identifier), into a scratch destination.
my $datadir = $node->data_dir;
sub run_restore
{
	my ($name) = @_;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run([ 'pg_walvault_restore', '-d', $archive, $name,
			"pg_wal/RECOVERYXLOG" ],
		'>', \$stdout, '2>', \$stderr,
		init => sub { chdir $datadir or die "chdir $datadir: $!"; });
	unlink "$datadir/pg_wal/RECOVERYXLOG";
	return ($? >> 8, $stderr);
}

# Every file of the clean archive restores.
{
	my @bad;
	foreach my $name (sort keys %method_of)
	{
		my ($rc, $stderr) = run_restore($name);
		push @bad, "$name: $rc $stderr" if $rc != 0;
	}
	is(join("\n", @bad), '', 'every segment of the clean archive restores');
}

sub path_of
{
	my ($name) = @_;
	return "$archive/$name$suffix{ $method_of{$name} }";
}

# Invert $len bytes of the archived file of $name at $offset.
sub damage
{
	my ($name, $offset, $len) = @_;
	my $path = path_of($name);
	my $content = read_file($path);
	substr($content, $offset, $len) = ~substr($content, $offset, $len);
	write_file($path, $content);
	return;
}

# Wait until the postmaster of $n has exited by itself.
sub wait_for_postmaster_exit
{
	my ($n) = @_;
	my $pidfile = $n->data_dir . '/postmaster.pid';
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		return 1 unless -e $pidfile;
		usleep(100_000);
	}
	return 0;
}

# Recovery from the base backup with pg_walvault_restore stops at $stop
# with FATAL, naming the damage ($log_re); once the archive is repaired
# ($repair), it goes on to the end.  Options: primary => the node whose
# backup and archive (default: the directory's), source => the program's
# options that name the archive, expected => its rows.
my $pitr = 0;
sub pitr_stops
{
	my ($label, $stop, $log_re, $repair, %opt) = @_;
	my $primary = $opt{primary} // $node;
	my $source = $opt{source} // qq{-d "$archive"};
	my $rows = $opt{expected} // $expected;
	my $restored = PostgreSQL::Test::Cluster->new('pitr' . ++$pitr);
	$restored->init_from_backup($primary, 'base');

	# The server is consistent, and pg_ctl returns, before it asks for the
	# damaged file; that request waits for a file the test creates once
	# the start is through (see t/030).
	my $go = $restored->basedir . '/go';
	my $cmd =
	  qq{sh -c 'if [ "\$1" = "$stop" ]; then while [ ! -e "$go" ]; do sleep 0.1; done; fi; exec pg_walvault_restore $source "\$1" "\$2"' restore %f %p};
	$cmd =~ s/'/''/g;
	$restored->append_conf(
		'postgresql.conf', qq{
archive_mode = off
restore_command = '$cmd'
});
	open(my $fh, '>', $restored->data_dir . '/recovery.signal') or die $!;
	close $fh;

	$restored->start;
	open($fh, '>', $go) or die $!;
	close $fh;

	# Either it stops, or (as before the fix) it takes the damage for the
	# end of the WAL and promotes.
	my $stopped =
	  qr/FATAL: .*could not restore file "$stop" from archive: child process exited with exit code 255/;
	my $log = '';
	wait_until(
		sub {
			$log = slurp_file($restored->logfile);
			return $log =~ $stopped || $log =~ /archive recovery complete/;
		}) or die "$label: recovery neither stopped nor ended";
	like($log, $stopped, "$label: recovery stopped at $stop");
	ok(wait_for_postmaster_exit($restored),
		"$label: the server exited") if $log =~ $stopped;
	$restored->stop('fast', fail_ok => 1);

	$log = slurp_file($restored->logfile);
	like($log, $log_re, "$label: the log says what is damaged");
	unlike($log, qr/archive recovery complete/,
		"$label: archive recovery did not complete");
	ok(!-e $restored->data_dir . '/pg_wal/00000002.history',
		"$label: no new timeline");
	$repair->();
	if ($log =~ /archive recovery complete/)
	{
		$restored->clean_node;
		return;
	}

	$restored->start;
	$restored->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'recovery did not finish';
	is( $restored->safe_psql('postgres',
			"SELECT count(*), md5(string_agg(t, ',' ORDER BY i)) FROM t"),
		$rows, "$label: repaired, recovery reaches the end of the archive");
	$restored->stop;
	$restored->clean_node;
	return;
}

# $name's file as it is now, and a way to put it back.
sub keep
{
	my ($name) = @_;
	my $path = path_of($name);
	my $good = read_file($path);
	return sub { write_file($path, $good); };
}

# the plain segments of the phase without compression (the backup's are
# plain too, before the lz4 ones)
my @plain = grep { $_ gt $segments{lz4}[-1] } @{ $segments{off} };

# The offset of eight bytes inside the data of a record (after its fixed
# header) that begins on page $page of a plain segment, or a later page.
sub record_data_offset
{
	my ($content, $page) = @_;
	for (; ($page + 1) * $BLCKSZ <= length($content); $page++)
	{
		my $start = $page * $BLCKSZ;
		my ($info, undef, undef, $rem_len) = wal_page_header($content, $start);
		my $off = $start + 24;
		$off += ($rem_len + 7) & ~7 if $info & 1;    # XLP_FIRST_IS_CONTRECORD
		while ($off + 64 <= $start + $BLCKSZ)
		{
			my $tot_len = unpack('V', substr($content, $off, 4));
			last if $tot_len == 0;
			return $off + 32 if $tot_len >= 64;
			$off += ($tot_len + 7) & ~7;
		}
	}
	die 'no record found';
}

# 1. The reproduction: eight bytes inverted inside a record on page 3 of a
# plain segment in the middle of the archive.
{
	my $name = $plain[1];
	my $off = record_data_offset(read_file(path_of($name)), 3);
	note "damaging $name at offset $off";
	my $repair = keep($name);
	damage($name, $off, 8);

	my ($rc, $stderr) = run_restore($name);
	is($rc, $FATAL, 'record damaged on page 3: exit 255');
	like($stderr,
		qr/restored content of ".*\/$name" has a WAL record at [0-9A-F]+\/[0-9A-F]+ with an incorrect CRC: the file is damaged/,
		'record damaged on page 3: the message names the file and the record');
	pitr_stops('record damaged on page 3', $name,
		qr/pg_walvault_restore: error: .*$name" has a WAL record at .* with an incorrect CRC/,
		$repair);
}

# A plain segment, after a plain one, that begins with the end of a record
# of the segment before.
my ($cross, $before);
for my $i (1 .. $#plain)
{
	my $content = read_file(path_of($plain[$i]));
	my ($info, undef, undef, $rem_len) = wal_page_header($content, 0);
	if (($info & 1) && $rem_len >= 16
		&& hex(substr($plain[$i], 16)) == hex(substr($plain[ $i - 1 ], 16)) + 1)
	{
		($cross, $before) = ($plain[$i], $plain[ $i - 1 ]);
		last;
	}
}
ok(defined $cross, 'a record crosses from one plain segment into the next')
  or BAIL_OUT('no record crosses into a plain segment');

# 2. A byte of a crossing record, in the segment it ends in: only the
# segment before can tell.
{
	my $repair = keep($cross);
	damage($cross, 40 + 8, 1);
	my ($rc, $stderr) = run_restore($cross);
	is($rc, $FATAL, 'crossing record damaged after the segment end: exit 255');
	like($stderr,
		qr/the WAL record at [0-9A-F]+\/[0-9A-F]+, from ".*\/$before" into ".*\/$cross", has an incorrect CRC/,
		'crossing record damaged after the segment end: the message names both files');
	pitr_stops('crossing record damaged after the segment end', $cross,
		qr/from ".*\/$before" into ".*\/$cross", has an incorrect CRC/, $repair);
}

# 3. The same record, damaged in the segment it begins in: that segment is
# restored (its end cannot be checked yet), the next one is not.
{
	my $repair = keep($before);
	damage($before, $SEG - 3, 1);
	my ($rc, $stderr) = run_restore($cross);
	is($rc, $FATAL, 'crossing record damaged before the segment end: exit 255');
	like($stderr, qr/"[^"]*\/$before"/,
		'crossing record damaged before the segment end: the message names the file');
	pitr_stops('crossing record damaged before the segment end', $cross,
		qr/pg_walvault_restore: error: .*$before/, $repair);
}

# 4. A byte in the zeroes after a WAL switch record.
{
	my ($name) = grep {
		my $c = read_file(path_of($_));
		substr($c, $SEG - $BLCKSZ) eq "\0" x $BLCKSZ
	} @plain;
	ok(defined $name, 'a plain segment ends with the zeroes of a WAL switch');
	my $repair = keep($name);
	damage($name, $SEG - 100, 1);
	my ($rc, $stderr) = run_restore($name);
	is($rc, $FATAL, 'byte in the zeroes after a switch: exit 255');
	like($stderr,
		qr/restored content of ".*\/$name" has nonzero bytes at offset 1048476, after a WAL switch record/,
		'byte in the zeroes after a switch: the message says where');
	pitr_stops('byte in the zeroes after a switch', $name,
		qr/has nonzero bytes at offset 1048476, after a WAL switch record/,
		$repair);
}

# 5. A byte inside a compressed frame, of each method.
foreach my $method ('lz4', 'zstd', 'gzip')
{
	my $name = $segments{$method}[1];
	my $path = path_of($name);
	my $repair = keep($name);
	damage($name, int((-s $path) / 2), 1);
	my ($rc, $stderr) = run_restore($name);
	is($rc, $FATAL, "byte inside a $method frame: exit 255");
	like($stderr, qr/"[^"]*\/$name(\.lz4|\.zst|\.gz)?"/,
		"byte inside a $method frame: the message names the file");
	pitr_stops("byte inside a $method frame", $name,
		qr/pg_walvault_restore: error: .*$name/, $repair);
}

# 6. An lz4 file of an older pg_walvault, whose frame has no content
# checksum: a changed byte may decompress without complaint, and the record
# CRCs catch it.
{
	my $name = $segments{lz4}[1];
	my $path = path_of($name);
	my $repair = keep($name);
	my $plain_copy = $node->basedir . "/$name";
	IPC::Run::run([ 'lz4', '-d', '-q', '-f', $path, $plain_copy ])
	  or die 'lz4 -d failed';
	IPC::Run::run([ 'lz4', '-q', '-f', '-B5', '--no-frame-crc', $plain_copy,
			$path ])
	  or die 'lz4 failed';
	my ($rc) = run_restore($name);
	is($rc, 0, 'lz4 frame without a content checksum restores');

	# a literal byte of the compressed stream, inside the first block
	my $content = read_file($path);
	my $pos = index($content, 'lz4lz4lz4');
	$pos = int(length($content) / 2) if $pos < 0;
	damage($name, $pos + 1, 1);
	($rc, my $stderr) = run_restore($name);
	# in the piece of a record that goes on into the next segment, the
	# change shows when that one is restored
	($rc, $stderr) = run_restore($segments{lz4}[2]) if $rc == 0;
	is($rc, $FATAL, 'byte inside an lz4 frame without checksum: exit 255');
	like($stderr, qr/\/$name/,
		'byte inside an lz4 frame without checksum: the message names the file');
	$repair->();
	unlink $plain_copy;
}

###
### An object store: every object carries the SHA-256 of its content
###
SKIP:
{
	my @missing = S3Test::missing_programs();
	skip 'S3 test server unavailable, missing: ' . join(' ', @missing), 1
	  if @missing;

	my $s3 = S3Test->start;
	$ENV{AWS_ACCESS_KEY_ID} = $s3->access_key;
	$ENV{AWS_SECRET_ACCESS_KEY} = $s3->secret_key;
	my ($bucket, $endpoint) = ($s3->bucket, $s3->endpoint);
	my $prefix = 'damaged';
	my $url = "s3://$bucket/$prefix";
	my $source = "-u $url --s3-endpoint $endpoint --s3-uri-style path";

	my $s3node = PostgreSQL::Test::Cluster->new('s3primary');
	$s3node->init(allows_streaming => 1, extra => ['--wal-segsize=1']);
	$s3node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_walvault'
archive_mode = on
archive_library = 'pg_walvault'
pg_walvault.archive_url = '$url'
pg_walvault.s3_endpoint = '$endpoint'
pg_walvault.s3_uri_style = path
log_line_prefix = '%m [%p] %b '
});
	$s3node->start;
	$s3node->safe_psql('postgres', 'CREATE TABLE t (i int, t text)');
	$s3node->backup('base');
	my $s3expected = make_wal($s3node, 'off', 'zstd');
	$s3node->stop;

	my %stored;    # segment => object name
	foreach my $key ($s3->list_keys("$prefix/"))
	{
		$stored{$1} = "$1" . ($2 // '')
		  if $key =~ m{/([0-9A-F]{24})(\.zst)?$};
	}
	my @names = sort keys %stored;
	my @objects_plain = grep { $stored{$_} eq $_ } @names;
	ok(@objects_plain >= 4, 'plain objects in the store');

	my $s3datadir = $s3node->data_dir;
	my $scratch = $s3node->basedir . '/objects';
	mkdir $scratch;
	my $run_s3 = sub {
		my ($name) = @_;
		my ($stdout, $stderr) = ('', '');
		IPC::Run::run([ 'pg_walvault_restore', split(/ /, $source), $name,
				'pg_wal/RECOVERYXLOG' ],
			'>', \$stdout, '2>', \$stderr,
			init => sub { chdir $s3datadir or die "chdir: $!"; });
		unlink "$s3datadir/pg_wal/RECOVERYXLOG";
		return ($? >> 8, $stderr);
	};

	# the SHA-256 stored with an object, from a HEAD
	my $stored_sha = sub {
		my ($object) = @_;
		my $r = $s3->request(method => 'HEAD', key => "$prefix/$object");
		return $r->{body} =~ /^x-amz-meta-walvault-sha256:\s*([0-9a-f]{64})/mi
		  ? $1 : '';
	};
	# replace the content of an object, with (keep_sha) or without the
	# SHA-256 stored with the original
	my $replace = sub {
		my ($object, $content, $keep_sha) = @_;
		my @headers = $keep_sha
		  ? ("x-amz-meta-walvault-sha256: $keep_sha") : ();
		write_file("$scratch/upload", $content);
		is($s3->put_object("$prefix/$object", "$scratch/upload",
				headers => \@headers),
			200, "replaced $object");
	};

	{
		my @bad;
		foreach my $name (@names)
		{
			my ($rc, $stderr) = $run_s3->($name);
			push @bad, "$name: $rc $stderr" if $rc != 0;
		}
		is(join("\n", @bad), '', 'every object of the clean store restores');
		my $obj = $stored{ $objects_plain[1] };
		$s3->get_object("$prefix/$obj", "$scratch/$obj");
		is($stored_sha->($obj), sha256_hex(read_file("$scratch/$obj")),
			'an object carries the SHA-256 of its content');
	}

	# Two plain objects in a row, a record crossing from the first into the
	# second, after the two the base backup needs to be consistent (the
	# server must be up before it asks for a damaged one).
	my ($backup_seg) =
	  slurp_file($s3node->backup_dir . '/base/backup_label') =~
	  /START WAL LOCATION: .* \(file ([0-9A-F]{24})\)/
	  or die 'no start WAL file in backup_label';
	my ($before, $cross);
	foreach my $i (1 .. $#objects_plain)
	{
		my ($a, $b) = @objects_plain[ $i - 1, $i ];
		next unless hex(substr($b, 16)) == hex(substr($a, 16)) + 1
		  && hex(substr($a, 16)) > hex(substr($backup_seg, 16)) + 1;
		$s3->get_object("$prefix/$_", "$scratch/$_") for ($a, $b);
		my ($info, undef, undef, $rem_len) =
		  wal_page_header(read_file("$scratch/$b"), 0);
		if (($info & 1) && $rem_len >= 16)
		{
			($before, $cross) = ($a, $b);
			last;
		}
	}
	ok(defined $cross, 'a record crosses from one plain object into the next');

	# A byte of the piece of that record in the first object, its last
	# byte: its record CRC can only be checked with the next one, its
	# stored SHA-256 at once.
	{
		my $name = $before;
		my $good = read_file("$scratch/$name");
		my $sha = $stored_sha->($name);
		my $bad = $good;
		substr($bad, -1, 1) = ~substr($bad, -1, 1);
		$replace->($name, $bad, $sha);
		my ($rc, $stderr) = $run_s3->($name);
		is($rc, $FATAL, 'object changed in the store: exit 255');
		like($stderr,
			qr/object ".*\/$name" does not match the SHA-256 stored with it when it was archived/,
			'object changed in the store: the message says so');
		pitr_stops('object changed in the store', $name,
			qr/does not match the SHA-256 stored with it/,
			sub { $replace->($name, $good, $sha) },
			primary => $s3node, source => $source,
			expected => $s3expected);
	}

	# An object of an older pg_walvault, without a stored SHA-256, damaged
	# inside a record, or in the part of a crossing record after the
	# segment end (whose start the program reads with a ranged GET).
	{
		my $name = $before;
		$s3->get_object("$prefix/$name", "$scratch/$name");
		my $good = read_file("$scratch/$name");
		my $sha = $stored_sha->($name);
		my $bad = $good;
		my $off = record_data_offset($bad, 3);
		substr($bad, $off, 8) = ~substr($bad, $off, 8);
		$replace->($name, $bad, undef);
		my ($rc, $stderr) = $run_s3->($name);
		is($rc, $FATAL, 'record damaged in an object without SHA-256: exit 255');
		like($stderr, qr/has a WAL record at .* with an incorrect CRC/,
			'record damaged in an object without SHA-256: the record CRC says so');
		$replace->($name, $good, $sha);

		$good = read_file("$scratch/$cross");
		$sha = $stored_sha->($cross);
		$bad = $good;
		substr($bad, 48, 1) = ~substr($bad, 48, 1);
		$replace->($cross, $bad, undef);
		($rc, $stderr) = $run_s3->($cross);
		is($rc, $FATAL, 'crossing record damaged in an object without SHA-256: exit 255');
		like($stderr, qr/into "s3:\/\/.*\/$cross", has an incorrect CRC/,
			'crossing record damaged in an object without SHA-256: the record CRC says so');
		pitr_stops('crossing record damaged in an object without SHA-256',
			$cross, qr/into "s3:\/\/.*\/$cross", has an incorrect CRC/,
			sub { $replace->($cross, $good, $sha) },
			primary => $s3node, source => $source,
			expected => $s3expected);
	}
	$s3->stop;
}

done_testing();

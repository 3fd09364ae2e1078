# Helpers shared by the tests of pg_walvault_restore (t/02x).
#
# fake_segment builds the content of a WAL segment that passes every check of
# the program (a long page header on the first page, a short one on every
# further page, with the WAL location the segment's name gives); the rest
# are small file and polling helpers.
package RestoreTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

our @EXPORT = qw(%MAGIC $MAJOR fake_segment write_file read_file
  wait_until spool_segments write_marker crc32c_update wal_page_header);

our %MAGIC = (15 => 0xD110, 16 => 0xD113, 17 => 0xD116, 18 => 0xD118);
our ($MAJOR) = `pg_config --version` =~ /PostgreSQL (\d+)/
  or die 'cannot tell the server version';

# fake_segment(name => ..., size => ..., seg_size => ..., seed => ...,
#     sysid => ..., tli => ..., magic => ..., info => ..., switch_page => ...)
#
# The name gives the WAL location of every page; seg_size (default: size) is
# what the first page says.  Each page holds one WAL record that fills it
# (a no-op of the XLOG resource manager, with a valid CRC-32C and xl_prev),
# whose data is a pattern that depends on seed.  With switch_page, the
# record on that page is an XLOG_SWITCH, and the server's zeroes follow it
# to the end of the segment.
sub fake_segment
{
	my (%opt) = @_;
	my $size = $opt{size} // 1024 * 1024;
	my $seg_size = $opt{seg_size} // $size;
	my $seed = $opt{seed} // 1;
	my $name = $opt{name} // '000000010000000000000001';
	my $tli = $opt{tli} // 1;
	my $sysid = $opt{sysid} // 7000000000000000000 + $seed;
	my $magic = $opt{magic} // $MAGIC{$MAJOR};
	my $info = $opt{info} // 0x0002;    # XLP_LONG_HEADER
	my $blcksz = 8192;

	my (undef, $log, $seg) = map { hex } unpack('A8 A8 A8', $name);
	my $segs_per_id = int(4294967296 / ($seg_size || 1)) || 1;
	my $start = ($log * $segs_per_id + $seg) * $seg_size;
	my $pattern = pack('N*',
		map { ($_ * 2654435761 + $seed * 97) % 4294967296 } 0 .. 2047);
	my %data_crc;
	my @pages;
	for (my $off = 0; $off < $size; $off += $blcksz)
	{
		my $page = $off / $blcksz;
		if (defined $opt{switch_page} && $page > $opt{switch_page})
		{
			push @pages, "\0" x $blcksz;
			next;
		}
		my $header =
		  $off == 0
		  ? pack('v v V Q< V x4 Q< V V',
			$magic, $info, $tli, $start, 0, $sysid, $seg_size, $blcksz)
		  : pack('v v V Q< V x4', $magic, 0, $tli, $start + $off, 0);
		my $lsn = $start + $off + length($header);
		# the previous page's record, which began after its header
		my $prev = $start + $off - $blcksz + ($off == $blcksz ? 40 : 24);
		my $switch = defined $opt{switch_page} && $page == $opt{switch_page};
		my $data = $switch ? '' : substr($pattern, length($header) + 24);
		# XLOG_NOOP (0x20) or XLOG_SWITCH (0x40) of RM_XLOG_ID (0)
		my $rec = pack('V V Q< C C x2', 24 + length($data), 0, $prev,
			$switch ? 0x40 : 0x20, 0);
		$data_crc{$data} //= crc32c_update(0xFFFFFFFF, $data);
		my $crc = crc32c_update($data_crc{$data}, $rec) ^ 0xFFFFFFFF;
		my $content = $header . $rec . pack('V', $crc) . $data;
		push @pages, $content . ("\0" x ($blcksz - length($content)));
	}
	return substr(join('', @pages), 0, $size);
}

my @CRC32C_TABLE = map {
	my $c = $_;
	$c = ($c & 1) ? ($c >> 1) ^ 0x82F63B78 : $c >> 1 for 1 .. 8;
	$c;
} 0 .. 255;

# crc32c_update($crc, $bytes): the CRC-32C register after $bytes (no final
# inversion), as PostgreSQL's COMP_CRC32C.
sub crc32c_update
{
	my ($crc, $bytes) = @_;
	$crc = $CRC32C_TABLE[ ($crc ^ $_) & 0xFF ] ^ ($crc >> 8)
	  for unpack('C*', $bytes);
	return $crc;
}

sub write_file
{
	my ($path, $content) = @_;
	open my $fh, '>', $path or die "could not open \"$path\": $!";
	binmode $fh;
	print $fh $content or die "could not write \"$path\": $!";
	close $fh or die "could not close \"$path\": $!";
	return;
}

sub read_file
{
	my ($path) = @_;
	open my $fh, '<', $path or return undef;
	binmode $fh;
	local $/;
	my $content = <$fh>;
	close $fh;
	return $content // '';
}

# Poll $cond every 100 ms until it is true; false after the test timeout.
sub wait_until
{
	my ($cond) = @_;
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		return 1 if $cond->();
		usleep(100_000);
	}
	return 0;
}

# Names of the segments in a spool directory, sorted (none if it is gone).
sub spool_segments
{
	my ($spool) = @_;
	opendir(my $dh, $spool) or return ();
	my @names = sort grep { /^[0-9A-F]{24}$/ } readdir($dh);
	closedir $dh;
	return @names;
}


# wal_page_header($content, $offset): xlp_info, xlp_tli, xlp_pageaddr and
# xlp_rem_len of the WAL page header at $offset of a segment's content.
sub wal_page_header
{
	my ($content, $offset) = @_;
	my (undef, $info, $tli, $addr, $rem_len) =
	  unpack('v v V Q< V', substr($content, $offset, 20));
	return ($info, $tli, $addr, $rem_len);
}

# write_marker($dir, $sysid): the marker pg_walvault writes into an archive
# directory before its first file, which the program needs before it may
# say "not in the archive" (an archive built by hand has none).
sub write_marker
{
	my ($dir, $sysid) = @_;
	write_file("$dir/pg_walvault.archive",
		"system_identifier = $sysid\n");
	return;
}

1;

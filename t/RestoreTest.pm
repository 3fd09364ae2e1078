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
  wait_until spool_segments);

our %MAGIC = (15 => 0xD110, 16 => 0xD113, 17 => 0xD116, 18 => 0xD118);
our ($MAJOR) = `pg_config --version` =~ /PostgreSQL (\d+)/
  or die 'cannot tell the server version';

# fake_segment(name => ..., size => ..., seg_size => ..., seed => ...,
#     sysid => ..., tli => ..., magic => ..., info => ...)
#
# The name gives the WAL location of every page; seg_size (default: size) is
# what the first page says; the pattern between headers depends on seed.
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
	my @pages;
	for (my $off = 0; $off < $size; $off += $blcksz)
	{
		my $header =
		  $off == 0
		  ? pack('v v V Q< V x4 Q< V V',
			$magic, $info, $tli, $start, 0, $sysid, $seg_size, $blcksz)
		  : pack('v v V Q< V x4', $magic, 0, $tli, $start + $off, 0);
		push @pages, $header . substr($pattern, length($header));
	}
	return substr(join('', @pages), 0, $size);
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

1;

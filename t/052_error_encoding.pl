# An error message is kept for the views in a buffer of 512 bytes; a longer
# one is cut there, and must be cut at a character boundary, or last_error
# would hold half a character: invalid text, which fails in convert_to()
# and in any client whose encoding differs from the server's.  A long
# archive directory path of two-byte characters makes the message too
# long; two paths one byte apart make sure that one of them puts a
# character across the cut.  Each time the whole view is read as UTF-8,
# and its text is the longest start of the message that fits.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use Encode ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WalvaultTest;

my $buffer = 512;    # WALVAULT_ERROR_LEN, with its terminating zero byte

my $node = walvault_node('encoding', hold => 1,
	initdb => [ '--encoding=UTF8', '--locale=C' ]);
my $base = $node->basedir;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_walvault');
is($node->safe_psql('postgres', 'SHOW server_encoding'), 'UTF8',
	'the cluster is in UTF8');

my $e_acute = "\xc3\xa9";    # é in UTF-8, as bytes
for my $pad ('', 'a')
{
	# a directory that does not exist: creating a file in it fails (in
	# names of 120 bytes: a file system takes at most 255 in one)
	my $dir = "$base/$pad" . join('/', ($e_acute x 60) x 5);
	my $message = "could not create file \"$dir/";
	die "the base directory is too long for this test: $base"
	  if length("could not create file \"$base/$pad") > $buffer - 8;

	set_archive_directory($node, $dir);
	make_segments($node, 1);
	# this directory's error, told from the previous one by its bytes (the
	# text itself may not be valid)
	my $mine = "substring(textsend(last_error) from 1 for "
	  . length("could not create file \"$base/$pad$e_acute")
	  . ") = '\\x"
	  . unpack('H*', "could not create file \"$base/$pad$e_acute") . "'::bytea";
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_walvault WHERE $mine")
	  or die 'failure not reported';

	for my $view ('pg_stat_walvault',
		"pg_stat_walvault_workers WHERE $mine LIMIT 1")
	{
		my ($name) = split / /, $view;
		my ($ret, $hex, $err) = $node->psql('postgres',
			"SELECT encode(convert_to(last_error, 'UTF8'), 'hex') FROM $view");
		is($ret, 0, "$name (pad '$pad'): last_error is valid UTF-8")
		  or diag $err;
		my $text = pack('H*', $hex // '');
		ok(defined eval { Encode::decode('UTF-8', $text, Encode::FB_CROAK | Encode::LEAVE_SRC); },
			"$name (pad '$pad'): it decodes as UTF-8");
		cmp_ok(length($text), '<', $buffer,
			"$name (pad '$pad'): it fits the buffer");
		# the longest prefix of the message that fits, minus at most the
		# half of a character
		cmp_ok(length($text), '>=', $buffer - 2,
			"$name (pad '$pad'): it is cut at the last whole character");
		is(substr($message, 0, length($text)), $text,
			"$name (pad '$pad'): it is the start of the message");
	}
}

$node->stop;
done_testing();

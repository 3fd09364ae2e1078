# monitoring/postgres_exporter.yaml plugs into Prometheus' postgres_exporter
# (Debian's prometheus-postgres-exporter): the exporter, connected as a
# role in pg_monitor, serves every metric of the file over HTTP with its
# type, labels and the values the views show; and every pg_walvault metric
# the README names (its example alert included) is one it serves.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WalvaultTest;

my ($exporter) = grep { -x }
  map { "$_/prometheus-postgres-exporter" } split(/:/, $ENV{PATH}), '/usr/bin';
plan skip_all =>
  'prometheus-postgres-exporter is not installed (Debian package prometheus-postgres-exporter)'
  unless $exporter;

my $queries = "$FindBin::RealBin/../monitoring/postgres_exporter.yaml";
my $readme = "$FindBin::RealBin/../README.md";

my $node = walvault_node('exporter',
	conf => "pg_walvault.stats_interval = '100ms'\n");
my $archive = $node->{walvault_archive};
$node->start;
$node->safe_psql('postgres',
	'CREATE EXTENSION pg_walvault; CREATE ROLE prometheus LOGIN IN ROLE pg_monitor');

# something to show: archived files, a failure, samples with a rate
archive_one_failure($node);
make_segments($node, 3);
wait_all_archived($node);
$node->poll_query_until('postgres',
	"SELECT max(sample_time) > (SELECT last_archived_time FROM pg_stat_walvault) FROM pg_stat_walvault_history"
) or die 'no sample after the last archived file';
# freeze the history, so that the rates hold still while we compare
$node->append_conf('postgresql.conf', "pg_walvault.stats_interval = '1h'");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT setting = '3600000' FROM pg_settings WHERE name = 'pg_walvault.stats_interval'");

# the exporter, with only our metrics
my $port = PostgreSQL::Test::Cluster::get_free_port();
my ($out, $err) = ('', '');
local $ENV{DATA_SOURCE_NAME} = 'host=' . $node->host . ' port=' . $node->port
  . ' user=prometheus dbname=postgres sslmode=disable';
my $h = IPC::Run::start(
	[
		$exporter, "--web.listen-address=127.0.0.1:$port",
		"--extend.query-path=$queries", '--disable-default-metrics',
		'--disable-settings-metrics', '--no-collector.database',
		'--no-collector.bgwriter'
	],
	'>', \$out, '2>', \$err);

my $http = HTTP::Tiny->new(timeout => 10);

# The exporter's /metrics once it serves our metrics ('' if it never does),
# while IPC::Run reads its output.
sub scrape
{
	my ($exporter_run) = @_;
	for (my $i = 0; $i < 10 * $PostgreSQL::Test::Utils::timeout_default; $i++)
	{
		$exporter_run->pump_nb;
		my $r = $http->get("http://127.0.0.1:$port/metrics");
		return $r->{content}
		  if $r->{success}
		  && $r->{content} =~ /^pg_walvault_archived_files_total\{/m;
		usleep(100_000);
	}
	return '';
}

my $view_before = $node->safe_psql('postgres',
	'SELECT archive_lag_bytes FROM pg_stat_walvault');
my $body = scrape($h);
my $view_after = $node->safe_psql('postgres',
	'SELECT archive_lag_bytes FROM pg_stat_walvault');
ok($body ne '', 'the exporter serves pg_walvault metrics')
  or diag("exporter stderr: $err");

# metrics: name => [ { labels }, value ], and their types
my (%metric, %type);
for my $line (split /\n/, $body)
{
	if ($line =~ /^# TYPE (\S+) (\S+)/) { $type{$1} = $2; next; }
	next if $line =~ /^#/;
	$line =~ /^(pg_walvault\w*?)(?:\{(.*)\})? (\S+)$/ or next;
	my ($name, $labels, $value) = ($1, $2 // '', $3);
	my %l = $labels =~ /(\w+)="([^"]*)"/g;
	push @{ $metric{$name} }, [ \%l, $value ];
}

# a float from the exporter against a value from the view (NULL: NaN)
sub same_value
{
	my ($got, $want) = @_;
	return $got eq 'NaN' if $want eq '';
	return 0 if $got eq 'NaN';
	return abs($got - $want) <= 1e-6 * (abs($want) + 1);
}

my %columns = (
	archived_files_total => 'archived_count',
	archived_bytes_total => 'archived_bytes',
	stored_bytes_total => 'stored_bytes',
	failed_attempts_total => 'failed_count',
	pending_files => 'pending_count',
	in_progress_files => 'in_progress_count',
	active_workers => 'active_workers',
	archived_bytes_per_second_1m => 'archived_bytes_per_sec_1m',
	archived_bytes_per_second_5m => 'archived_bytes_per_sec_5m',
	archive_latency_p50_seconds => 'archive_latency_p50_ms / 1000',
	archive_latency_p99_seconds => 'archive_latency_p99_ms / 1000',
	last_archived_time_seconds => 'extract(epoch FROM last_archived_time)',
	last_failed_time_seconds => 'extract(epoch FROM last_failed_time)',
	stats_reset_time_seconds => 'extract(epoch FROM stats_reset)');
for my $m (sort keys %columns)
{
	my $name = "pg_walvault_$m";
	my $want = $node->safe_psql('postgres',
		"SELECT $columns{$m} FROM pg_stat_walvault");
	my $got = $metric{$name} ? $metric{$name}[0][1] : 'missing';
	ok(same_value($got, $want), "$name is $got, as the view says ($want)");
	is($type{$name}, $m =~ /_total$/ ? 'counter' : 'gauge', "$name is a $type{$name}");
}
my $server = $node->host . ':' . $node->port;
is(join(',', sort keys %{ $metric{pg_walvault_archived_files_total}[0][0] // {} }),
	'server', 'the instance metrics carry the label the exporter adds');
is($metric{pg_walvault_archived_files_total}[0][0]{server}, $server,
	"which names the server ($server)");
my $lag = $metric{pg_walvault_archive_lag_bytes} ? $metric{pg_walvault_archive_lag_bytes}[0][1] : -1;
ok($lag >= $view_before && $lag <= $view_after,
	"pg_walvault_archive_lag_bytes is $lag, as the view says ($view_before .. $view_after)");
cmp_ok($metric{pg_walvault_failed_attempts_total}[0][1] // 0, '>', 0,
	'the failure is counted');
isnt($metric{pg_walvault_archived_bytes_per_second_1m}[0][1] // 'NaN', 'NaN',
	'the rate is a number once there are samples');

# one series per process, labelled with its slot and role
my $rows = $node->safe_psql('postgres',
	"SELECT worker_id, role, (state = 'archiving')::int, files_archived, bytes_archived, failures, restarts FROM pg_stat_walvault_workers ORDER BY worker_id"
);
my @m = qw(busy files_archived_total bytes_archived_total failures_total restarts_total);
is( join(',', sort keys %{ $metric{pg_walvault_process_busy}[0][0] // {} }),
	'role,server,worker_id', 'per-process series are labelled by role and worker_id');
my @bad;
my $nrows = 0;
for my $row (split /\n/, $rows)
{
	my ($id, $role, @values) = split /\|/, $row;
	$nrows++;
	for my $i (0 .. $#m)
	{
		my ($series) = grep { $_->[0]{worker_id} eq $id && $_->[0]{role} eq $role }
		  @{ $metric{"pg_walvault_process_$m[$i]"} // [] };
		push @bad, "$m[$i] of $id ($role): " . ($series ? $series->[1] : 'missing')
		  . " instead of $values[$i]"
		  unless $series && same_value($series->[1], $values[$i]);
	}
}
cmp_ok($nrows, '>=', 4, "$nrows processes");
is(join('; ', @bad), '', 'each has its series, with the values of pg_stat_walvault_workers');
is($type{pg_walvault_process_files_archived_total}, 'counter', 'counters are counters');
is($type{pg_walvault_process_busy}, 'gauge', 'busy is a gauge');

# every metric the README's monitoring section names (its example alert
# included) is served
my ($section) = slurp_file($readme) =~ /^## Monitoring with Prometheus\n(.*?)^## /ms;
ok(defined $section, 'the README has a monitoring section');
my %named = map { $_ => 1 } ($section // '') =~ /\b(pg_walvault_[a-z0-9_]+)\b/g;
cmp_ok(scalar(keys %named), '>=', 3, 'it names metrics');
is(join(', ', grep { !$type{$_} } sort keys %named), '',
	'every metric it names is served');

$h->kill_kill;

# beside the exporter's own default metrics, as DBAs run it (on 17 and
# later without its bgwriter collector, which reads columns 17 moved)
my @defaults = ("--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries");
push @defaults, '--no-collector.bgwriter' if $node->pg_version >= 17;
$h = IPC::Run::start([ $exporter, @defaults ], '>', \$out, '2>', \$err);
$body = scrape($h);
like($body, qr/^pg_stat_database_xact_commit\{.*\n(?:.*\n)*pg_walvault_archived_files_total\{|^pg_walvault_archived_files_total\{.*\n(?:.*\n)*pg_stat_database_xact_commit\{/m,
	"with the exporter's default metrics, ours are served too");
like($body, qr/^pg_exporter_last_scrape_error 0$/m, 'and the scrape has no error');
$h->kill_kill;

# the example alert rules are valid, where Prometheus' promtool is at hand
SKIP:
{
	my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
	skip 'promtool (Debian package prometheus) is not installed', 1 unless $promtool;
	my ($rules) = ($section // '') =~ /```yaml\n(.*?)```/s;
	my $file = $node->basedir . '/alerts.yml';
	open(my $fh, '>', $file) or die $!;
	print $fh $rules // '';
	close $fh;
	my ($stdout, $stderr);
	IPC::Run::run([ $promtool, 'check', 'rules', $file ], '>', \$stdout, '2>', \$stderr);
	like($stdout, qr/SUCCESS: 2 rules found/, "the README's alert rules pass promtool check rules");
}

$node->stop;
done_testing();

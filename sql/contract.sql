--
-- The SQL contract of pg_walvault, checked with pgTAP: views, columns and
-- types, functions, privileges, parameters and error messages.
--
\set QUIET on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS pg_walvault;
RESET client_min_messages;
\pset format unaligned
\pset tuples_only on

SELECT plan(117);

-- views
SELECT has_view('pg_stat_walvault');
SELECT has_view('pg_stat_walvault_workers');
SELECT columns_are('pg_stat_walvault', ARRAY[
    'archived_count', 'archived_bytes', 'stored_bytes', 'failed_count',
    'last_archived_wal', 'last_archived_time', 'last_failed_wal',
    'last_failed_time', 'last_error',
    'pending_count', 'in_progress_count', 'active_workers',
    'archived_bytes_per_sec_1m', 'archived_bytes_per_sec_5m',
    'archive_lag_bytes', 'archive_latency_p50_ms', 'archive_latency_p99_ms',
    'stats_reset']);
SELECT col_type_is('pg_stat_walvault', 'archived_count', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'archived_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'stored_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'failed_count', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'last_archived_wal', 'text');
SELECT col_type_is('pg_stat_walvault', 'last_archived_time', 'timestamp with time zone');
SELECT col_type_is('pg_stat_walvault', 'last_failed_wal', 'text');
SELECT col_type_is('pg_stat_walvault', 'last_failed_time', 'timestamp with time zone');
SELECT col_type_is('pg_stat_walvault', 'last_error', 'text');
SELECT col_type_is('pg_stat_walvault', 'pending_count', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'in_progress_count', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'active_workers', 'integer');
SELECT col_type_is('pg_stat_walvault', 'archived_bytes_per_sec_1m', 'double precision');
SELECT col_type_is('pg_stat_walvault', 'archived_bytes_per_sec_5m', 'double precision');
SELECT col_type_is('pg_stat_walvault', 'archive_lag_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault', 'archive_latency_p50_ms', 'double precision');
SELECT col_type_is('pg_stat_walvault', 'archive_latency_p99_ms', 'double precision');
SELECT col_type_is('pg_stat_walvault', 'stats_reset', 'timestamp with time zone');

SELECT columns_are('pg_stat_walvault_workers', ARRAY[
    'worker_id', 'pid', 'role', 'state', 'current_file', 'started_at',
    'state_since', 'files_archived', 'bytes_archived', 'failures', 'restarts',
    'last_error', 'last_error_time']);
SELECT col_type_is('pg_stat_walvault_workers', 'worker_id', 'integer');
SELECT col_type_is('pg_stat_walvault_workers', 'pid', 'integer');
SELECT col_type_is('pg_stat_walvault_workers', 'role', 'text');
SELECT col_type_is('pg_stat_walvault_workers', 'state', 'text');
SELECT col_type_is('pg_stat_walvault_workers', 'current_file', 'text');
SELECT col_type_is('pg_stat_walvault_workers', 'started_at', 'timestamp with time zone');
SELECT col_type_is('pg_stat_walvault_workers', 'state_since', 'timestamp with time zone');
SELECT col_type_is('pg_stat_walvault_workers', 'files_archived', 'bigint');
SELECT col_type_is('pg_stat_walvault_workers', 'bytes_archived', 'bigint');
SELECT col_type_is('pg_stat_walvault_workers', 'failures', 'bigint');
SELECT col_type_is('pg_stat_walvault_workers', 'restarts', 'integer');
SELECT col_type_is('pg_stat_walvault_workers', 'last_error', 'text');
SELECT col_type_is('pg_stat_walvault_workers', 'last_error_time', 'timestamp with time zone');

SELECT has_view('pg_stat_walvault_history');
SELECT columns_are('pg_stat_walvault_history', ARRAY[
    'sample_time', 'wal_bytes', 'archived_count', 'archived_bytes',
    'stored_bytes', 'failed_count', 'pending_count', 'archive_lag_bytes',
    'wal_bytes_per_sec', 'archived_bytes_per_sec', 'wal_records', 'wal_fpi',
    'checkpoints', 'server_archived_count', 'server_failed_count']);
SELECT col_type_is('pg_stat_walvault_history', 'sample_time', 'timestamp with time zone');
SELECT col_type_is('pg_stat_walvault_history', 'wal_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'archived_count', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'archived_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'stored_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'failed_count', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'pending_count', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'archive_lag_bytes', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'wal_bytes_per_sec', 'double precision');
SELECT col_type_is('pg_stat_walvault_history', 'archived_bytes_per_sec', 'double precision');
SELECT col_type_is('pg_stat_walvault_history', 'wal_records', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'wal_fpi', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'checkpoints', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'server_archived_count', 'bigint');
SELECT col_type_is('pg_stat_walvault_history', 'server_failed_count', 'bigint');

SELECT has_view('pg_stat_walvault_store');
SELECT columns_are('pg_stat_walvault_store', ARRAY[
    'archive_url', 'endpoint', 'region', 'requests', 'retries',
    'failed_requests', 'bytes_sent', 'bytes_received', 'connections',
    'request_time_avg_ms', 'request_latency_p50_ms', 'request_latency_p99_ms',
    'request_time_ms', 'stats_reset']);
SELECT col_type_is('pg_stat_walvault_store', 'archive_url', 'text');
SELECT col_type_is('pg_stat_walvault_store', 'endpoint', 'text');
SELECT col_type_is('pg_stat_walvault_store', 'region', 'text');
SELECT col_type_is('pg_stat_walvault_store', 'requests', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'retries', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'failed_requests', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'bytes_sent', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'bytes_received', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'connections', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'request_time_avg_ms', 'double precision');
SELECT col_type_is('pg_stat_walvault_store', 'request_latency_p50_ms', 'double precision');
SELECT col_type_is('pg_stat_walvault_store', 'request_latency_p99_ms', 'double precision');
SELECT col_type_is('pg_stat_walvault_store', 'request_time_ms', 'bigint');
SELECT col_type_is('pg_stat_walvault_store', 'stats_reset', 'timestamp with time zone');

-- functions
SELECT has_function('pg_stat_walvault_reset', ARRAY['text']);
SELECT function_returns('pg_stat_walvault_reset', ARRAY['text'], 'void');
SELECT has_function('pg_walvault_verify', ARRAY['integer', 'boolean']);
SELECT function_returns('pg_walvault_verify', ARRAY['integer', 'boolean'], 'setof record');
SELECT is((SELECT pg_get_function_arguments('pg_walvault_verify'::regproc)),
          'jobs integer DEFAULT 4, progress boolean DEFAULT false, OUT timeline integer, OUT kind text, OUT first_file text, OUT last_file text, OUT status text, OUT detail text',
          'pg_walvault_verify: arguments, defaults and columns');

-- privileges: pg_monitor reads, nobody else; nobody but superusers resets
SELECT table_privs_are('pg_stat_walvault', 'pg_monitor', ARRAY['SELECT']);
SELECT table_privs_are('pg_stat_walvault_workers', 'pg_monitor', ARRAY['SELECT']);
SELECT table_privs_are('pg_stat_walvault', 'public', ARRAY[]::text[]);
SELECT table_privs_are('pg_stat_walvault_workers', 'public', ARRAY[]::text[]);
SELECT table_privs_are('pg_stat_walvault_history', 'pg_monitor', ARRAY['SELECT']);
SELECT table_privs_are('pg_stat_walvault_history', 'public', ARRAY[]::text[]);
SELECT table_privs_are('pg_stat_walvault_store', 'pg_monitor', ARRAY['SELECT']);
SELECT table_privs_are('pg_stat_walvault_store', 'public', ARRAY[]::text[]);
SELECT function_privs_are('pg_stat_walvault_reset', ARRAY['text'], 'public', ARRAY[]::text[]);
SELECT function_privs_are('pg_stat_walvault_reset', ARRAY['text'], 'pg_monitor', ARRAY[]::text[]);
SELECT function_privs_are('pg_walvault_verify', ARRAY['integer', 'boolean'], 'public', ARRAY[]::text[]);
SELECT function_privs_are('pg_walvault_verify', ARRAY['integer', 'boolean'], 'pg_read_server_files', ARRAY['EXECUTE']);

-- parameters
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.max_workers'), '4', 'max_workers defaults to 4');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.min_workers'), '1', 'min_workers defaults to 1');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.readahead'), '64', 'readahead defaults to 64');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.mark_done_ahead'), 'on', 'mark_done_ahead defaults to on');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.batch_size'), '8', 'batch_size defaults to 8');
SELECT is((SELECT setting || unit FROM pg_settings WHERE name = 'pg_walvault.worker_idle_timeout'), '60000ms', 'worker_idle_timeout defaults to 1 minute');
SELECT is((SELECT setting || unit FROM pg_settings WHERE name = 'pg_walvault.stats_interval'), '10000ms', 'stats_interval defaults to 10 s');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.history_size'), '1440', 'history_size defaults to 1440');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.save_stats'), 'on', 'save_stats defaults to on');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.compression'), 'off', 'compression defaults to off');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.archive_command'), '', 'archive_command defaults to empty');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.archive_url'), '', 'archive_url defaults to empty');
SELECT is((SELECT setting FROM pg_settings WHERE name = 'pg_walvault.s3_uri_style'), 'host', 's3_uri_style defaults to host');
SELECT is((SELECT setting || unit FROM pg_settings WHERE name = 'pg_walvault.s3_connect_timeout'), '10000ms', 's3_connect_timeout defaults to 10 s');
SELECT is((SELECT setting || unit FROM pg_settings WHERE name = 'pg_walvault.s3_stall_timeout'), '30000ms', 's3_stall_timeout defaults to 30 s');
SELECT is((SELECT count(*)::int FROM pg_settings WHERE name LIKE 'pg_walvault.%' AND context <> 'sighup'), 0, 'every parameter can be changed with a reload');

-- error messages a user can hit
SELECT throws_ok($$SELECT pg_stat_walvault_reset('bogus')$$, '22023',
                 'unrecognized reset target: "bogus"', 'a bad reset target is refused');
SELECT throws_ok($$SET pg_walvault.max_workers = 2$$, '55P02', NULL,
                 'max_workers cannot be SET in a session');
SELECT throws_ok($$SET pg_walvault.no_such_parameter = 1$$, '42602', NULL,
                 'the pg_walvault prefix is reserved');
SELECT throws_ok($$SELECT * FROM pg_walvault_verify()$$, '55000',
                 'no pg_walvault archive is configured',
                 'pg_walvault_verify() needs an archive');
SELECT throws_ok($$SELECT * FROM pg_walvault_verify(jobs => 0)$$, '22023',
                 'jobs must be between 1 and 64', 'pg_walvault_verify() refuses 0 jobs');

-- a role without grants can neither read nor reset; pg_monitor can read
CREATE ROLE walvault_nobody;
CREATE ROLE walvault_monitor IN ROLE pg_monitor;
SET ROLE walvault_nobody;
SELECT throws_ok($$SELECT * FROM pg_stat_walvault$$, '42501', NULL,
                 'a role without grants cannot read pg_stat_walvault');
SELECT throws_ok($$SELECT pg_stat_walvault_reset()$$, '42501', NULL,
                 'a role without grants cannot reset');
SELECT throws_ok($$SELECT * FROM pg_stat_walvault_history$$, '42501', NULL,
                 'a role without grants cannot read the history');
SELECT throws_ok($$SELECT * FROM pg_stat_walvault_store$$, '42501', NULL,
                 'a role without grants cannot read pg_stat_walvault_store');
SELECT throws_ok($$SELECT * FROM pg_walvault_verify()$$, '42501', NULL,
                 'a role without grants cannot verify the archive');
RESET ROLE;
SET ROLE walvault_monitor;
SELECT lives_ok($$SELECT * FROM pg_stat_walvault$$, 'pg_monitor reads pg_stat_walvault');
SELECT lives_ok($$SELECT * FROM pg_stat_walvault_workers$$, 'pg_monitor reads pg_stat_walvault_workers');
SELECT lives_ok($$SELECT * FROM pg_stat_walvault_history$$, 'pg_monitor reads pg_stat_walvault_history');
SELECT lives_ok($$SELECT * FROM pg_stat_walvault_store$$, 'pg_monitor reads pg_stat_walvault_store');
SELECT throws_ok($$SELECT pg_stat_walvault_reset('history')$$, '42501', NULL,
                 'pg_monitor cannot reset the history');
SELECT throws_ok($$SELECT pg_stat_walvault_reset()$$, '42501', NULL,
                 'pg_monitor cannot reset');
RESET ROLE;
DROP ROLE walvault_nobody;
DROP ROLE walvault_monitor;

SELECT * FROM finish();

--
-- pg_walvault 1.0 keeps working with this library and updates to 1.1, which
-- adds stored_bytes to pg_stat_walvault, then to 1.2, which adds
-- pg_stat_walvault_store, then to 1.3, which adds pg_walvault_verify().
-- (CREATE EXTENSION installs 1.0 and applies the same update scripts, so a
-- fresh install is this path too.)
--
DROP EXTENSION IF EXISTS pg_walvault;
CREATE EXTENSION pg_walvault VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault';
-- 1.0's view, served by the new library
SELECT count(*) AS columns,
       count(*) FILTER (WHERE column_name = 'stored_bytes') AS stored_bytes
FROM information_schema.columns WHERE table_name = 'pg_stat_walvault';
SELECT archived_count >= 0 AS readable FROM pg_stat_walvault;

ALTER EXTENSION pg_walvault UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault';
SELECT archived_bytes >= stored_bytes AS readable FROM pg_stat_walvault;

-- the new view's columns, in order, and its privileges after the update
SELECT ordinal_position, column_name, data_type
FROM information_schema.columns WHERE table_name = 'pg_stat_walvault'
ORDER BY ordinal_position;
SELECT grantee, privilege_type FROM information_schema.role_table_grants
WHERE table_name = 'pg_stat_walvault' AND grantee <> current_user;
SELECT has_function_privilege('pg_monitor', 'pg_walvault_stats()', 'EXECUTE') AS monitor_executes,
       has_function_privilege('public', 'pg_walvault_stats()', 'EXECUTE') AS public_executes;

-- 1.2: the object store's view appears, readable by pg_monitor only
SELECT count(*) AS store_views FROM pg_views WHERE viewname = 'pg_stat_walvault_store';
ALTER EXTENSION pg_walvault UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault';
SELECT requests, retries, failed_requests, bytes_sent, archive_url
FROM pg_stat_walvault_store;
SELECT grantee, privilege_type FROM information_schema.role_table_grants
WHERE table_name = 'pg_stat_walvault_store' AND grantee <> current_user;

-- 1.3: pg_walvault_verify() appears, executable by pg_read_server_files
-- only, and refuses to run without an archive
SELECT count(*) AS verify_functions FROM pg_proc WHERE proname = 'pg_walvault_verify';
ALTER EXTENSION pg_walvault UPDATE TO '1.3';
SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault';
SELECT pg_get_function_result('pg_walvault_verify'::regproc);
SELECT has_function_privilege('pg_read_server_files', 'pg_walvault_verify(integer, boolean)', 'EXECUTE') AS readers_execute,
       has_function_privilege('pg_monitor', 'pg_walvault_verify(integer, boolean)', 'EXECUTE') AS monitor_executes,
       has_function_privilege('public', 'pg_walvault_verify(integer, boolean)', 'EXECUTE') AS public_executes;
SELECT * FROM pg_walvault_verify();

-- a SQL definition whose row type does not match what the C function
-- returns is refused clearly rather than misread
CREATE FUNCTION walvault_mismatch(OUT a bigint, OUT b bigint) RETURNS record
AS 'pg_walvault', 'pg_walvault_stats_1_1' LANGUAGE C;
SELECT * FROM walvault_mismatch();
DROP FUNCTION walvault_mismatch();
CREATE FUNCTION walvault_verify_mismatch(jobs integer, progress boolean,
    OUT a bigint, OUT b bigint) RETURNS SETOF record
AS 'pg_walvault', 'pg_walvault_verify_1_3' LANGUAGE C;
SELECT * FROM walvault_verify_mismatch(1, false);
DROP FUNCTION walvault_verify_mismatch(integer, boolean);

--
-- pg_walvault 1.0 keeps working with this library and updates to 1.1,
-- which adds stored_bytes to pg_stat_walvault; the update leaves the same
-- objects and privileges as a fresh install of 1.1.
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

-- what the update made, to compare with a fresh install
CREATE TEMP TABLE updated AS
SELECT 'column' AS kind, table_name || '.' || column_name || ' ' || data_type AS what,
       ordinal_position AS pos
FROM information_schema.columns WHERE table_name LIKE 'pg_stat_walvault%'
UNION ALL
SELECT 'privilege', table_name || ' ' || grantee || ' ' || privilege_type, 0
FROM information_schema.role_table_grants
WHERE table_name LIKE 'pg_stat_walvault%' AND grantee <> current_user
UNION ALL
SELECT 'function', p.oid::regprocedure::text || ' ' || p.prosrc || ' ' ||
       coalesce(array_to_string(p.proacl, ','), ''), 0
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_walvault';

DROP EXTENSION pg_walvault;
CREATE EXTENSION pg_walvault;
SELECT extversion FROM pg_extension WHERE extname = 'pg_walvault';

CREATE TEMP TABLE fresh AS
SELECT 'column' AS kind, table_name || '.' || column_name || ' ' || data_type AS what,
       ordinal_position AS pos
FROM information_schema.columns WHERE table_name LIKE 'pg_stat_walvault%'
UNION ALL
SELECT 'privilege', table_name || ' ' || grantee || ' ' || privilege_type, 0
FROM information_schema.role_table_grants
WHERE table_name LIKE 'pg_stat_walvault%' AND grantee <> current_user
UNION ALL
SELECT 'function', p.oid::regprocedure::text || ' ' || p.prosrc || ' ' ||
       coalesce(array_to_string(p.proacl, ','), ''), 0
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_walvault';

-- no difference either way
(SELECT * FROM updated EXCEPT SELECT * FROM fresh)
UNION ALL
(SELECT * FROM fresh EXCEPT SELECT * FROM updated);
SELECT count(*) > 50 AS compared_something FROM fresh;

-- a SQL definition whose row type does not match what the C function
-- returns is refused clearly rather than misread
CREATE FUNCTION walvault_mismatch(OUT a bigint, OUT b bigint) RETURNS record
AS 'pg_walvault', 'pg_walvault_stats_1_1' LANGUAGE C;
SELECT * FROM walvault_mismatch();
DROP FUNCTION walvault_mismatch();

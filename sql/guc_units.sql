--
-- Parameters with a unit refuse values out of range.  PostgreSQL 18 added
-- the unit to the range in its message: expected/guc_units_1.out holds
-- that version of the same output.
--
ALTER SYSTEM SET pg_walvault.worker_idle_timeout = '10ms';
ALTER SYSTEM SET pg_walvault.stats_interval = '5ms';
ALTER SYSTEM SET pg_walvault.stats_interval = '2h';
ALTER SYSTEM SET pg_walvault.s3_connect_timeout = 0;
ALTER SYSTEM SET pg_walvault.s3_stall_timeout = '10ms';
-- in range: accepted, then taken back
ALTER SYSTEM SET pg_walvault.stats_interval = '1s';
ALTER SYSTEM RESET pg_walvault.stats_interval;

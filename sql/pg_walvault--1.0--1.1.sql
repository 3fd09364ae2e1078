/* pg_walvault--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_walvault UPDATE TO '1.1'" to load this file. \quit

-- pg_stat_walvault gains stored_bytes (bytes written to the archive, less
-- than archived_bytes with pg_walvault.compression).  A view's columns
-- cannot be inserted in the middle: the view and its function are made anew.
DROP VIEW pg_stat_walvault;
DROP FUNCTION pg_walvault_stats();

CREATE FUNCTION pg_walvault_stats(
    OUT archived_count bigint,
    OUT archived_bytes bigint,
    OUT stored_bytes bigint,
    OUT failed_count bigint,
    OUT last_archived_wal text,
    OUT last_archived_time timestamptz,
    OUT last_failed_wal text,
    OUT last_failed_time timestamptz,
    OUT last_error text,
    OUT pending_count bigint,
    OUT in_progress_count bigint,
    OUT active_workers integer,
    OUT archived_bytes_per_sec_1m double precision,
    OUT archived_bytes_per_sec_5m double precision,
    OUT archive_lag_bytes bigint,
    OUT archive_latency_p50_ms double precision,
    OUT archive_latency_p99_ms double precision,
    OUT stats_reset timestamptz
)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_walvault_stats_1_1'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW pg_stat_walvault AS
    SELECT * FROM pg_walvault_stats();

REVOKE ALL ON FUNCTION pg_walvault_stats() FROM PUBLIC;
REVOKE ALL ON pg_stat_walvault FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_walvault_stats() TO pg_monitor;
GRANT SELECT ON pg_stat_walvault TO pg_monitor;

/* pg_walvault--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION pg_walvault" to load this file. \quit

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

CREATE FUNCTION pg_walvault_workers(
    OUT worker_id integer,
    OUT pid integer,
    OUT role text,
    OUT state text,
    OUT current_file text,
    OUT started_at timestamptz,
    OUT state_since timestamptz,
    OUT files_archived bigint,
    OUT bytes_archived bigint,
    OUT failures bigint,
    OUT restarts integer,
    OUT last_error text,
    OUT last_error_time timestamptz
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_walvault_workers'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW pg_stat_walvault_workers AS
    SELECT * FROM pg_walvault_workers();

CREATE FUNCTION pg_walvault_history(
    OUT sample_time timestamptz,
    OUT wal_bytes bigint,
    OUT archived_count bigint,
    OUT archived_bytes bigint,
    OUT stored_bytes bigint,
    OUT failed_count bigint,
    OUT pending_count bigint,
    OUT archive_lag_bytes bigint,
    OUT wal_bytes_per_sec double precision,
    OUT archived_bytes_per_sec double precision,
    OUT wal_records bigint,
    OUT wal_fpi bigint,
    OUT checkpoints bigint,
    OUT server_archived_count bigint,
    OUT server_failed_count bigint
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_walvault_history'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW pg_stat_walvault_history AS
    SELECT * FROM pg_walvault_history();

CREATE FUNCTION pg_stat_walvault_reset(target text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'pg_walvault_reset'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

-- Statistics are for monitoring roles; resetting them is for superusers
-- and whoever they grant it to.
REVOKE ALL ON FUNCTION pg_walvault_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_walvault_workers() FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_walvault_history() FROM PUBLIC;
REVOKE ALL ON FUNCTION pg_stat_walvault_reset(text) FROM PUBLIC;
REVOKE ALL ON pg_stat_walvault FROM PUBLIC;
REVOKE ALL ON pg_stat_walvault_workers FROM PUBLIC;
REVOKE ALL ON pg_stat_walvault_history FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_walvault_stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pg_walvault_workers() TO pg_monitor;
GRANT EXECUTE ON FUNCTION pg_walvault_history() TO pg_monitor;
GRANT SELECT ON pg_stat_walvault TO pg_monitor;
GRANT SELECT ON pg_stat_walvault_workers TO pg_monitor;
GRANT SELECT ON pg_stat_walvault_history TO pg_monitor;

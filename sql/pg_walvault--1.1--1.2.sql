/* pg_walvault--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_walvault UPDATE TO '1.2'" to load this file. \quit

-- pg_stat_walvault_store: the requests made to the object store of
-- pg_walvault.archive_url, counted since the last reset of the counters.
CREATE FUNCTION pg_walvault_store(
    OUT archive_url text,
    OUT endpoint text,
    OUT region text,
    OUT requests bigint,
    OUT retries bigint,
    OUT failed_requests bigint,
    OUT bytes_sent bigint,
    OUT bytes_received bigint,
    OUT connections bigint,
    OUT request_time_avg_ms double precision,
    OUT request_latency_p50_ms double precision,
    OUT request_latency_p99_ms double precision,
    OUT request_time_ms bigint,
    OUT stats_reset timestamptz
)
RETURNS record
AS 'MODULE_PATHNAME', 'pg_walvault_store'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW pg_stat_walvault_store AS
    SELECT * FROM pg_walvault_store();

REVOKE ALL ON FUNCTION pg_walvault_store() FROM PUBLIC;
REVOKE ALL ON pg_stat_walvault_store FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_walvault_store() TO pg_monitor;
GRANT SELECT ON pg_stat_walvault_store TO pg_monitor;

/* pg_walvault--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_walvault UPDATE TO '1.3'" to load this file. \quit

-- pg_walvault_verify: pg_walvault_restore --verify of the configured archive
-- (pg_walvault.archive_directory or pg_walvault.archive_url), run by the
-- calling backend, as rows: per timeline its first and last segment, every
-- gap, every file a restore would refuse, history files and whether they
-- chain, base backups and whether they are restorable; the last row, of
-- kind 'summary', says 'clean' or 'problems'.  It reads the whole archive:
-- EXECUTE is revoked from PUBLIC and granted to pg_read_server_files, whose
-- members may read any file the server can; GRANT it to a monitoring role
-- that should run it.
CREATE FUNCTION pg_walvault_verify(
    jobs integer DEFAULT 4,
    progress boolean DEFAULT false,
    OUT timeline integer,
    OUT kind text,
    OUT first_file text,
    OUT last_file text,
    OUT status text,
    OUT detail text
)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pg_walvault_verify_1_3'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION pg_walvault_verify(integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_walvault_verify(integer, boolean) TO pg_read_server_files;

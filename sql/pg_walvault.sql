--
-- pg_walvault: SQL interface and parameter validation
--
CREATE EXTENSION pg_walvault;

-- a fresh server has archived nothing
SELECT archived_count, archived_bytes, failed_count, last_archived_wal,
       last_failed_wal, last_error, in_progress_count,
       stats_reset IS NOT NULL AS has_stats_reset
FROM pg_stat_walvault;

-- every parameter, with its default and when it can be changed
SELECT name, setting, unit, context, vartype, min_val, max_val
FROM pg_settings WHERE name LIKE 'pg_walvault.%' ORDER BY name;

-- check hooks reject what is wrong in the value itself
ALTER SYSTEM SET pg_walvault.archive_directory = 'relative/archive';
ALTER SYSTEM SET pg_walvault.archive_directory = './archive';
SELECT format('ALTER SYSTEM SET pg_walvault.archive_directory = %L',
              '/' || repeat('x', 1100)) \gexec
ALTER SYSTEM SET pg_walvault.max_workers = -1;
ALTER SYSTEM SET pg_walvault.max_workers = 100000;
ALTER SYSTEM SET pg_walvault.readahead = 5000;
ALTER SYSTEM SET pg_walvault.batch_size = 0;
ALTER SYSTEM SET pg_walvault.batch_size = 65;
-- (out-of-range times are in guc_units.sql: the server's message differs
-- between versions)
ALTER SYSTEM SET pg_walvault.history_size = 5;
ALTER SYSTEM SET pg_walvault.save_stats = 'maybe';
ALTER SYSTEM SET pg_walvault.compression = 'brotli';
ALTER SYSTEM SET pg_walvault.compression = 'zstd:level=99';
ALTER SYSTEM SET pg_walvault.compression = 'lz4:13';
ALTER SYSTEM SET pg_walvault.compression = 'gzip:fast';
ALTER SYSTEM SET pg_walvault.compression = 'gzip:level';
ALTER SYSTEM SET pg_walvault.compression = 'zstd:workers=4';
ALTER SYSTEM SET pg_walvault.compression = 'none:1';
ALTER SYSTEM SET pg_walvault.compression = 'off:1';
ALTER SYSTEM SET pg_walvault.compression = '';
-- the object store: a URL, an endpoint, a region, a storage class
ALTER SYSTEM SET pg_walvault.archive_url = 'https://bucket/prefix';
ALTER SYSTEM SET pg_walvault.archive_url = 's3://ab';
ALTER SYSTEM SET pg_walvault.archive_url = 's3://My_Bucket/wal';
ALTER SYSTEM SET pg_walvault.archive_url = 's3://bucket-/wal';
ALTER SYSTEM SET pg_walvault.archive_url = 's3://bucket/a//b';
ALTER SYSTEM SET pg_walvault.s3_endpoint = 'ftp://example.com';
ALTER SYSTEM SET pg_walvault.s3_endpoint = 'https://example.com/path';
ALTER SYSTEM SET pg_walvault.s3_endpoint = 'https://key:secret@example.com';
ALTER SYSTEM SET pg_walvault.s3_region = 'EU West';
ALTER SYSTEM SET pg_walvault.s3_uri_style = 'virtual';
ALTER SYSTEM SET pg_walvault.s3_ca_file = 'ca.pem';
ALTER SYSTEM SET pg_walvault.s3_storage_class = 'standard ia';
-- only postgresql.conf and a reload change them, not SET
SET pg_walvault.max_workers = 2;
-- the prefix is reserved: a typo is an error, not a silent placeholder
SET pg_walvault.max_worker = 2;

-- a valid value is accepted (and then taken back)
ALTER SYSTEM SET pg_walvault.archive_directory = '/var/lib/postgresql/archive';
ALTER SYSTEM RESET pg_walvault.archive_directory;
ALTER SYSTEM SET pg_walvault.compression = 'zstd';
ALTER SYSTEM SET pg_walvault.compression = 'zstd:level=-5';
ALTER SYSTEM SET pg_walvault.compression = 'lz4:12';
ALTER SYSTEM SET pg_walvault.compression = 'gzip:9';
ALTER SYSTEM SET pg_walvault.compression = 'none';
ALTER SYSTEM RESET pg_walvault.compression;
ALTER SYSTEM SET pg_walvault.archive_url = 's3://wal-archive';
ALTER SYSTEM SET pg_walvault.archive_url = 's3://wal-archive/cluster1/main/';
ALTER SYSTEM SET pg_walvault.s3_endpoint = 'http://127.0.0.1:7480';
ALTER SYSTEM SET pg_walvault.s3_endpoint = 'https://storage.googleapis.com/';
ALTER SYSTEM SET pg_walvault.s3_region = 'eu-west-1';
ALTER SYSTEM SET pg_walvault.s3_uri_style = 'path';
ALTER SYSTEM SET pg_walvault.s3_ca_file = '/etc/ssl/certs/my-ca.pem';
ALTER SYSTEM SET pg_walvault.s3_storage_class = 'STANDARD_IA';
ALTER SYSTEM RESET pg_walvault.archive_url;
ALTER SYSTEM RESET pg_walvault.s3_endpoint;
ALTER SYSTEM RESET pg_walvault.s3_region;
ALTER SYSTEM RESET pg_walvault.s3_uri_style;
ALTER SYSTEM RESET pg_walvault.s3_ca_file;
ALTER SYSTEM RESET pg_walvault.s3_storage_class;

-- reset: everything, the counters, or a clear error
SELECT pg_stat_walvault_reset();
SELECT pg_stat_walvault_reset(NULL);
SELECT pg_stat_walvault_reset('counters');
SELECT pg_stat_walvault_reset('history');
SELECT pg_stat_walvault_reset('all');
SELECT count(*) FROM pg_stat_walvault_history;
SELECT pg_stat_walvault_reset('everything');

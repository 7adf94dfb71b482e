-- ruaflow distributed store: retention as table TTLs (ClickHouse 19.6 and later).
--
-- Not a versioned migration: `ruaflow migrate --config FILE` (and `ruaflow prune
-- --clickhouse URL --config FILE`) apply it after the migrations whenever the config has a
-- [retention] section, with that section's ages in place of {records_days} and
-- {aggregates_days}; a statement whose age is not set is skipped (that tier is kept
-- forever), and one whose TTL is already in force is not sent again (changing a TTL
-- rewrites the table's parts).
--
-- ClickHouse 18.16 (Debian's package, used by the tests) has no TTL: there `ruaflow
-- prune` does the same by dropping each month partition whose days are all past the
-- age, and deleting old rows of the small unpartitioned tables (see
-- processor/src/clickhouse/retention.rs). The tiers are those of the SQLite store
-- (processor/src/retention.rs): per-record rows, failure reports and dead letters (by
-- the time they were received) for records_days; reports, aggregates,
-- TLS results, detector signals, alerts and envelope hashes for aggregates_days.

ALTER TABLE dmarc_records MODIFY TTL day + toIntervalDay({records_days});
ALTER TABLE failure_reports MODIFY TTL day + toIntervalDay({records_days});
ALTER TABLE dead_letters MODIFY TTL received_at + toIntervalDay({records_days});
ALTER TABLE dead_letter_inputs MODIFY TTL received_at + toIntervalDay({records_days});

ALTER TABLE reports MODIFY TTL day + toIntervalDay({aggregates_days});
ALTER TABLE tlsrpt_policies MODIFY TTL day + toIntervalDay({aggregates_days});
ALTER TABLE tlsrpt_failures MODIFY TTL day + toIntervalDay({aggregates_days});
ALTER TABLE agg_source_day MODIFY TTL day + toIntervalDay({aggregates_days});
ALTER TABLE agg_selector_day MODIFY TTL day + toIntervalDay({aggregates_days});
ALTER TABLE detector_signals MODIFY TTL day + toIntervalDay({aggregates_days});
ALTER TABLE alerts MODIFY TTL window_end + toIntervalDay({aggregates_days});
ALTER TABLE envelopes MODIFY TTL stored_at + toIntervalDay({aggregates_days});

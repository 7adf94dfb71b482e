-- ruaflow distributed store, version 1 (ClickHouse).
-- The same logical tables as the embedded store (schema/sql/sqlite/0001_init.sql).
--
-- Portability: this runs on ClickHouse 18.16 (Debian's clickhouse-server, used by the
-- tests) and on the current LTS (the docker-compose image), so it keeps to their common
-- subset: no LowCardinality, no IPv4/IPv6 types (IPs are text), no CODEC, no TTL, no
-- Nullable in sorting keys, explicit `ENGINE = ...()` with PARTITION BY / ORDER BY
-- clauses (the "new" MergeTree syntax, which 18.16 already has).
--
-- Idempotency: delivery is at-least-once and 18.16 has no insert deduplication for
-- non-replicated tables. So every table is a ReplacingMergeTree whose sorting key is
-- derived from the report identity (report_key = the first 16 bytes of the SHA-256 of
-- kind, reporter, report id, policy domain, begin, end) or from the envelope hash, plus
-- the row's position in the report; the partition key is a function of the same
-- identity. A redelivered report writes the same keys again and the copies collapse
-- on merge; readers use FINAL (or GROUP BY the key) to see each row once before that.
-- Aggregates are kept per report for the same reason: summing MergeTree views would
-- count a redelivery twice.
--
-- Times: DateTime columns are UTC; `day` is the UTC date a report's range belongs to
-- (the day of its midpoint), the time axis for dashboards (report windows, not
-- ingestion time).
--
-- Statements are separated by a line that ends with ';' (the HTTP interface takes one
-- statement per request); lines starting with '--' are comments and are not sent.

CREATE TABLE IF NOT EXISTS envelopes (
    sha256      FixedString(32),
    source      String,
    origin      String,
    filename    String,
    received_at DateTime,
    stored_at   DateTime
) ENGINE = ReplacingMergeTree(stored_at)
ORDER BY sha256;

CREATE TABLE IF NOT EXISTS reports (
    report_key      FixedString(16),
    kind            String,
    org_name        String,
    report_id       String,
    domain          String,
    begin_ts        DateTime,
    end_ts          DateTime,
    day             Date,
    email           String,
    schema_version  String,
    policy_p        String,
    policy_sp       String,
    policy_np       String,
    adkim           String,
    aspf            String,
    pct             Nullable(UInt8),
    testing         String,
    record_count    UInt64,
    message_count   UInt64,
    envelope_sha256 FixedString(32),
    location        String,
    warnings        String,
    stored_at       DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (kind, domain, day, report_key);

-- One row per DMARC record; `ordinal` is the record's position in its report. The
-- auth results are kept whole as JSON arrays, and the deciding DKIM signature and SPF
-- check are plain columns so queries never unnest (no cross products).
CREATE TABLE IF NOT EXISTS dmarc_records (
    report_key    FixedString(16),
    ordinal       UInt32,
    domain        String,
    day           Date,
    reporter      String,
    source_ip     String,
    network       String,
    count         UInt64,
    disposition   String,
    policy_dkim   String,
    policy_spf    String,
    dmarc_pass    UInt8,
    dkim_aligned  UInt8,
    spf_aligned   UInt8,
    header_from   String,
    envelope_from String,
    envelope_to   String,
    dkim_domain   String,
    dkim_selector String,
    dkim_result   String,
    spf_domain    String,
    spf_result    String,
    reasons       String,
    dkim_auth     String,
    spf_auth      String,
    stored_at     DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (domain, day, report_key, ordinal);

CREATE TABLE IF NOT EXISTS tlsrpt_policies (
    report_key          FixedString(16),
    ordinal             UInt32,
    day                 Date,
    reporter            String,
    policy_type         String,
    policy_domain       String,
    mx_host             String,
    policy_string       String,
    successful_sessions UInt64,
    failed_sessions     UInt64,
    stored_at           DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, report_key, ordinal);

CREATE TABLE IF NOT EXISTS tlsrpt_failures (
    report_key             FixedString(16),
    policy_ordinal         UInt32,
    ordinal                UInt32,
    day                    Date,
    reporter               String,
    policy_domain          String,
    result_type            String,
    sending_mta_ip         String,
    receiving_mx_hostname  String,
    receiving_ip           String,
    failed_sessions        UInt64,
    additional_information String,
    failure_reason_code    String,
    stored_at              DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, report_key, policy_ordinal, ordinal);

-- Messages per policy domain x day x source IP x reporter, one row per report (and per
-- part of a report with very many sources): sum them, grouped as needed, over FINAL.
-- `dkim_only_pass` is DKIM-aligned pass with SPF not aligned: where a replay shows.
CREATE TABLE IF NOT EXISTS agg_source_day (
    domain            String,
    day               Date,
    source_ip         String,
    reporter          String,
    network           String,
    report_key        FixedString(16),
    part              UInt32,
    messages          UInt64,
    dmarc_pass        UInt64,
    dkim_aligned_pass UInt64,
    spf_aligned_pass  UInt64,
    dkim_only_pass    UInt64,
    disp_none         UInt64,
    disp_quarantine   UInt64,
    disp_reject       UInt64,
    stored_at         DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (domain, day, source_ip, reporter, report_key, part);

-- Messages per policy domain x day x DKIM signing domain + selector, one row per report.
CREATE TABLE IF NOT EXISTS agg_selector_day (
    domain         String,
    day            Date,
    dkim_domain    String,
    selector       String,
    reporter       String,
    report_key     FixedString(16),
    part           UInt32,
    messages       UInt64,
    dkim_pass      UInt64,
    dkim_only_pass UInt64,
    stored_at      DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (domain, day, dkim_domain, selector, report_key, part);

-- What is known about each source IP (enrichment); the newest row per IP wins.
CREATE TABLE IF NOT EXISTS sources (
    ip          String,
    network     String,
    ptr         String,
    ptr_base    String,
    asn         UInt32,
    as_org      String,
    country     String,
    resolved_at DateTime,
    updated_at  DateTime
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY ip;

-- Inputs (or parts of inputs) that held no readable report, with the reason and the
-- raw bytes up to a cap (the whole input also goes to the ruaflow.reports.dlq topic).
CREATE TABLE IF NOT EXISTS dead_letters (
    envelope_sha256 FixedString(32),
    location        String,
    source          String,
    origin          String,
    reason          String,
    received_at     DateTime,
    raw_size        UInt64,
    raw             String,
    stored_at       DateTime
) ENGINE = ReplacingMergeTree(stored_at)
ORDER BY (envelope_sha256, location);

-- Alerts as raised, one row per notice (firing, later resolved). The sorting key is
-- the notice's identity, so a notice raised twice is stored once.
CREATE TABLE IF NOT EXISTS alerts (
    kind         String,
    domain       String,
    subject      String,
    severity     String,
    window_start DateTime,
    window_end   DateTime,
    observed     Float64,
    baseline     Float64,
    first_seen   DateTime,
    raised_at    DateTime,
    state        String,
    summary      String,
    body         String
) ENGINE = ReplacingMergeTree(raised_at)
ORDER BY (kind, domain, subject, window_start, state);

-- The daily value of each detector signal per domain (and subject), as last evaluated.
CREATE TABLE IF NOT EXISTS detector_signals (
    domain     String,
    signal     String,
    subject    String,
    day        Date,
    value      Float64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (domain, signal, subject, day);

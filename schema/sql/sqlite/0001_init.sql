-- ruaflow embedded store, version 1.
-- The same logical tables as the ClickHouse store (schema/sql/clickhouse/). Times are
-- unix seconds (UTC); `day` is the unix second of the UTC midnight a report's range
-- belongs to (the day of its midpoint). IPs are text in their canonical form.

-- Raw inputs already stored, by the SHA-256 of their bytes: a byte-identical
-- redelivery is recognized here before any parsing.
CREATE TABLE envelopes (
    sha256       BLOB PRIMARY KEY,
    source       TEXT NOT NULL,
    origin       TEXT NOT NULL,
    filename     TEXT,
    received_at  INTEGER NOT NULL,
    stored_at    INTEGER NOT NULL,
    reports      INTEGER NOT NULL,
    dead_letters INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per report. The UNIQUE constraint is the report identity: a resent report
-- (same reporter, id, domain and range) is stored once, however it arrives.
CREATE TABLE reports (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,          -- dmarc | tlsrpt
    org_name        TEXT NOT NULL,
    report_id       TEXT NOT NULL,
    domain          TEXT NOT NULL,          -- policy domain ('' for a TLS report without one)
    begin_ts        INTEGER NOT NULL,
    end_ts          INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    email           TEXT,
    schema_version  TEXT,                   -- rfc7489 | rfc9990 | rfc8460
    policy_p        TEXT,
    policy_sp       TEXT,
    policy_np       TEXT,
    adkim           TEXT,
    aspf            TEXT,
    pct             INTEGER,
    testing         TEXT,
    record_count    INTEGER NOT NULL,
    message_count   INTEGER NOT NULL,
    envelope_sha256 BLOB NOT NULL,
    location        TEXT NOT NULL,
    stored_at       INTEGER NOT NULL,
    warnings        TEXT,                   -- JSON array
    UNIQUE (kind, org_name, report_id, domain, begin_ts, end_ts)
);
CREATE INDEX reports_domain_day ON reports (domain, day);

-- One row per DMARC record. The auth results are kept whole as JSON arrays; the
-- chosen DKIM signature (the aligned passing one, else the first) and SPF check are
-- also in plain columns so queries never unnest (no cross products).
CREATE TABLE dmarc_records (
    report          INTEGER NOT NULL REFERENCES reports (id),
    source_ip       TEXT NOT NULL,
    count           INTEGER NOT NULL,
    disposition     TEXT NOT NULL,
    policy_dkim     TEXT,                   -- receiver's aligned DKIM verdict, NULL when absent
    policy_spf      TEXT,
    dmarc_pass      INTEGER NOT NULL,
    dkim_aligned    INTEGER NOT NULL,
    spf_aligned     INTEGER NOT NULL,
    header_from     TEXT NOT NULL,
    envelope_from   TEXT,
    envelope_to     TEXT,
    dkim_domain     TEXT,
    dkim_selector   TEXT,
    dkim_result     TEXT,
    spf_domain      TEXT,
    spf_result      TEXT,
    reasons         TEXT,                   -- JSON array of {type, comment}
    dkim_auth       TEXT NOT NULL,          -- JSON array
    spf_auth        TEXT NOT NULL           -- JSON array
);
CREATE INDEX dmarc_records_report ON dmarc_records (report);

CREATE TABLE tlsrpt_policies (
    report              INTEGER NOT NULL REFERENCES reports (id),
    policy_type         TEXT NOT NULL,
    policy_domain       TEXT NOT NULL,
    mx_host             TEXT,               -- JSON array
    policy_string       TEXT,               -- JSON array
    successful_sessions INTEGER NOT NULL,
    failed_sessions     INTEGER NOT NULL
);
CREATE INDEX tlsrpt_policies_report ON tlsrpt_policies (report);

CREATE TABLE tlsrpt_failures (
    report                 INTEGER NOT NULL REFERENCES reports (id),
    policy_domain          TEXT NOT NULL,
    result_type            TEXT NOT NULL,
    sending_mta_ip         TEXT,
    receiving_mx_hostname  TEXT,
    receiving_ip           TEXT,
    failed_sessions        INTEGER NOT NULL,
    additional_information TEXT,
    failure_reason_code    TEXT
);
CREATE INDEX tlsrpt_failures_report ON tlsrpt_failures (report);

-- Messages per policy domain × day × source IP × reporter. `dkim_only_pass` is
-- DKIM-aligned pass with SPF not aligned: the volume a DKIM replay shows up in.
CREATE TABLE agg_source_day (
    domain            TEXT NOT NULL,
    day               INTEGER NOT NULL,
    source_ip         TEXT NOT NULL,
    reporter          TEXT NOT NULL,
    network           TEXT NOT NULL,        -- /24 (IPv4) or /48 (IPv6)
    messages          INTEGER NOT NULL,
    dmarc_pass        INTEGER NOT NULL,
    dkim_aligned_pass INTEGER NOT NULL,
    spf_aligned_pass  INTEGER NOT NULL,
    dkim_only_pass    INTEGER NOT NULL,
    disp_none         INTEGER NOT NULL,
    disp_quarantine   INTEGER NOT NULL,
    disp_reject       INTEGER NOT NULL,
    PRIMARY KEY (domain, day, source_ip, reporter)
) WITHOUT ROWID;
-- A source's history for a domain (first seen, days seen, SPF authorization): what the
-- detectors ask to tell known senders from unknown ones.
CREATE INDEX agg_source_history ON agg_source_day (domain, source_ip, day);

-- Messages per policy domain × day × DKIM signing domain + selector.
CREATE TABLE agg_selector_day (
    domain         TEXT NOT NULL,
    day            INTEGER NOT NULL,
    dkim_domain    TEXT NOT NULL,
    selector       TEXT NOT NULL,           -- '' when the receiver did not say
    messages       INTEGER NOT NULL,
    dkim_pass      INTEGER NOT NULL,
    dkim_only_pass INTEGER NOT NULL,
    PRIMARY KEY (domain, day, dkim_domain, selector)
) WITHOUT ROWID;

-- What is known about each source IP (enrichment), filled in as it is learned.
CREATE TABLE sources (
    ip          TEXT PRIMARY KEY,
    network     TEXT NOT NULL,
    ptr         TEXT,
    ptr_base    TEXT,                       -- registrable domain of the PTR name
    asn         INTEGER,
    as_org      TEXT,
    country     TEXT,
    resolved_at INTEGER,                    -- last successful or definitive rDNS answer
    first_seen  INTEGER NOT NULL
) WITHOUT ROWID;

-- Inputs (or parts of inputs) that held no readable report, with the reason and the
-- raw bytes up to a cap, so nothing is lost and an operator can replay them.
CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY,
    envelope_sha256 BLOB NOT NULL,
    source          TEXT NOT NULL,
    origin          TEXT NOT NULL,
    location        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    raw_size        INTEGER NOT NULL,
    raw             BLOB,                   -- the first raw_cap bytes of the envelope
    UNIQUE (envelope_sha256, location)
);

-- Alerts as raised, one row per notice: a firing alert and, later, its resolved notice.
-- `subject` tells apart alerts of one kind on one domain and day (a TLS result type, a
-- network, a reporter); `body` is the whole alert as JSON, exactly as sinks receive it.
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    domain       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    severity     TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    observed     REAL NOT NULL,
    baseline     REAL NOT NULL,
    first_seen   INTEGER NOT NULL,
    raised_at    INTEGER NOT NULL,
    state        TEXT NOT NULL,             -- firing | resolved
    summary      TEXT NOT NULL,
    body         TEXT NOT NULL,
    UNIQUE (kind, domain, subject, window_start, state)
);
CREATE INDEX alerts_open ON alerts (kind, domain, subject, window_start);

-- The daily value of each detector signal, per domain (and subject), as last evaluated:
-- the history robust baselines are computed from. Kept in the store so learning
-- survives restarts.
CREATE TABLE detector_signals (
    domain  TEXT NOT NULL,
    signal  TEXT NOT NULL,
    subject TEXT NOT NULL,
    day     INTEGER NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (domain, signal, subject, day)
) WITHOUT ROWID;

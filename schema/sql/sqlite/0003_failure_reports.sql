-- ruaflow embedded store, version 3: DMARC failure (forensic) reports.
-- One row per report, keyed by its identity (`report_key`: the first 16 bytes of the
-- SHA-256 of the reporter, every ARF field and the original Message-ID), so a report
-- redelivered or resent in another wrapping is stored once. Rows arrive redacted
-- (processor/src/redact.rs): local parts of addresses, the subject and the body are
-- absent unless the configuration allows them; `redacted` says what was left out.
-- `domain` + `source_ip` join the sender history (agg_source_day) of the same domain.
CREATE TABLE failure_reports (
    id                              INTEGER PRIMARY KEY,
    report_key                      BLOB NOT NULL UNIQUE,
    arrival                         INTEGER NOT NULL,   -- unix seconds
    day                             INTEGER NOT NULL,   -- UTC midnight of arrival
    reporter                        TEXT NOT NULL,
    feedback_type                   TEXT NOT NULL,
    domain                          TEXT NOT NULL,      -- Reported-Domain ('' when absent)
    source_ip                       TEXT,
    network                         TEXT NOT NULL,      -- /24 or /48 ('' without an IP)
    auth_failures                   TEXT NOT NULL,      -- comma separated
    delivery_result                 TEXT,
    dkim_domain                     TEXT,
    dkim_selector                   TEXT,
    spf_domain                      TEXT,
    identity_alignment              TEXT,
    mail_from                       TEXT,
    rcpt_to                         TEXT,
    authentication_results          TEXT,
    header_from                     TEXT,
    header_to                       TEXT,
    subject                         TEXT,
    date                            INTEGER,
    message_id                      TEXT,
    original_authentication_results TEXT,
    body                            TEXT,
    redacted                        TEXT NOT NULL,
    envelope_sha256                 BLOB NOT NULL,
    location                        TEXT NOT NULL,
    stored_at                       INTEGER NOT NULL
);
CREATE INDEX failure_reports_domain_day ON failure_reports (domain, day);

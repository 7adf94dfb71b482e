-- ruaflow distributed store, version 3: DMARC failure (forensic) reports.
-- The same logical table as the embedded store (schema/sql/sqlite/0003_failure_reports.sql),
-- within the 18.16 subset described in 0001_init.sql.
--
-- One row per report. `report_key` is the report identity (the first 16 bytes of the
-- SHA-256 of the reporter, every ARF field and the original Message-ID), and `day` and
-- `domain` derive from the report too, so a redelivered report writes the same sorting
-- key and the copies collapse on merge; read with FINAL. Rows arrive redacted
-- (processor/src/redact.rs): `redacted` says what was left out. `domain` + `source_ip`
-- join the sender history (agg_source_day).

CREATE TABLE IF NOT EXISTS failure_reports (
    report_key                      FixedString(16),
    arrival                         DateTime,
    day                             Date,
    reporter                        String,
    feedback_type                   String,
    domain                          String,
    source_ip                       String,
    network                         String,
    auth_failures                   String,
    delivery_result                 String,
    dkim_domain                     String,
    dkim_selector                   String,
    spf_domain                      String,
    identity_alignment              String,
    mail_from                       String,
    rcpt_to                         String,
    authentication_results          String,
    header_from                     String,
    header_to                       String,
    subject                         String,
    date                            Nullable(DateTime),
    message_id                      String,
    original_authentication_results String,
    body                            String,
    redacted                        String,
    envelope_sha256                 FixedString(32),
    location                        String,
    stored_at                       DateTime
) ENGINE = ReplacingMergeTree(stored_at)
PARTITION BY toYYYYMM(day)
ORDER BY (domain, day, report_key);

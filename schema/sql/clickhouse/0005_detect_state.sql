-- ruaflow distributed store: the detector group's state (`ruaflow detect`), written by
-- whichever member owns the domain (the Kafka partition of its digests), read by the
-- dashboards.
--
-- `senders` / `sender_networks`: the sender model (processor/src/sender.rs), one row per
-- policy domain × source address (× /24 or /48 network), as in the SQLite store; the
-- newest `version` of a row wins (read with FINAL). A digest is folded into a row once:
-- `digest_partition`/`digest_offset` is the position of the last digest folded in (a
-- digest read again after a crash or a rebalance is at or before it), and `applied` holds
-- the latest report parts folded in (a digest published again by a processor that
-- restarted comes soon after the first).
CREATE TABLE IF NOT EXISTS senders (
    domain            String,
    source            String,
    network           String,
    first_day         Date,
    last_day          Date,
    days              Array(Date),
    days_seen         UInt32,
    messages          UInt64,
    dmarc_pass        UInt64,
    dkim_aligned_pass UInt64,
    spf_aligned_pass  UInt64,
    dkim_only_pass    UInt64,
    first_spf_day     Nullable(Date),
    first_dkim_day    Nullable(Date),
    dkim_keys         Array(String),
    status            String,
    reason            String,
    status_since      Date,
    applied           Array(String),
    digest_partition  Int32,
    digest_offset     Int64,
    version           UInt64,
    updated_at        DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (domain, source);

CREATE TABLE IF NOT EXISTS sender_networks (
    domain            String,
    source            String,
    network           String,
    first_day         Date,
    last_day          Date,
    days              Array(Date),
    days_seen         UInt32,
    messages          UInt64,
    dmarc_pass        UInt64,
    dkim_aligned_pass UInt64,
    spf_aligned_pass  UInt64,
    dkim_only_pass    UInt64,
    first_spf_day     Nullable(Date),
    first_dkim_day    Nullable(Date),
    dkim_keys         Array(String),
    status            String,
    reason            String,
    status_since      Date,
    applied           Array(String),
    digest_partition  Int32,
    digest_offset     Int64,
    version           UInt64,
    updated_at        DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (domain, source);

-- The detectors' notices with their lifecycle: `id` is derived from the notice's
-- identity (kind, domain, subject, window, state), so a notice raised again is the same
-- row; `notified` says the sinks were handed it (a notice stored but not yet handed over
-- when its owner died is handed over by the next owner); the newest `version` wins.
-- `alerts` keeps one row per notice for the dashboards.
CREATE TABLE IF NOT EXISTS notices (
    id              Int64,
    kind            String,
    domain          String,
    subject         String,
    window_start    DateTime,
    state           String,
    body            String,
    historical      UInt8,
    notified        UInt8,
    acknowledged_at DateTime,
    ack_note        String,
    version         UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (domain, kind, subject, window_start, state);

-- The sender model: who sends mail as each policy domain, and why a source is known
-- (processor/src/sender.rs). One row per policy domain × address (`senders`) and per
-- policy domain × /24 or /48 (`sender_networks`), kept up to date by the writer from
-- each stored report, in the same transaction. A file written before this version
-- learns its model once from the aggregates already stored (see sqlite.rs, migrate).
--
-- `days` is the JSON array of the distinct report days seen (the newest 400);
-- `days_seen` counts all of them. `status` is the status as of `last_day`
-- (configured | authorized | service | familiar | unknown), `reason` why, and
-- `status_since` the last day the status changed. The detectors ask the status as of
-- other days from the same columns.

CREATE TABLE senders (
    domain            TEXT NOT NULL,
    source            TEXT NOT NULL,
    network           TEXT NOT NULL,
    first_day         INTEGER NOT NULL,
    last_day          INTEGER NOT NULL,
    days              TEXT NOT NULL,
    days_seen         INTEGER NOT NULL,
    messages          INTEGER NOT NULL,
    dmarc_pass        INTEGER NOT NULL,
    dkim_aligned_pass INTEGER NOT NULL,
    spf_aligned_pass  INTEGER NOT NULL,
    dkim_only_pass    INTEGER NOT NULL,
    first_spf_day     INTEGER,
    first_dkim_day    INTEGER,
    dkim_keys         TEXT NOT NULL,            -- JSON array of "signing domain/selector"
    status            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    status_since      INTEGER NOT NULL,
    PRIMARY KEY (domain, source)
) WITHOUT ROWID;
CREATE INDEX senders_source ON senders (source);
CREATE INDEX senders_status ON senders (domain, status);

CREATE TABLE sender_networks (
    domain            TEXT NOT NULL,
    source            TEXT NOT NULL,            -- the network
    network           TEXT NOT NULL,
    first_day         INTEGER NOT NULL,
    last_day          INTEGER NOT NULL,
    days              TEXT NOT NULL,
    days_seen         INTEGER NOT NULL,
    messages          INTEGER NOT NULL,
    dmarc_pass        INTEGER NOT NULL,
    dkim_aligned_pass INTEGER NOT NULL,
    spf_aligned_pass  INTEGER NOT NULL,
    dkim_only_pass    INTEGER NOT NULL,
    first_spf_day     INTEGER,
    first_dkim_day    INTEGER,
    dkim_keys         TEXT NOT NULL,
    status            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    status_since      INTEGER NOT NULL,
    PRIMARY KEY (domain, source)
) WITHOUT ROWID;

-- What enrichment names for an address: the AS's domain (IPinfo), the mail service
-- behind it and its kind.
ALTER TABLE sources ADD COLUMN as_domain TEXT;
ALTER TABLE sources ADD COLUMN service TEXT;
ALTER TABLE sources ADD COLUMN service_kind TEXT;

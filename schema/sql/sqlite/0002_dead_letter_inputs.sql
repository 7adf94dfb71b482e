-- Dead letters of one input share one copy of its bytes.
--
-- Before this version every dead letter kept its own copy of the first MiB of its input,
-- so an mbox of 400 messages without a report wrote 400 copies. Now `dead_letter_inputs`
-- holds the first `max_dead_letter_bytes` of each input once, keyed by its SHA-256, and
-- `dead_letters` rows point at it through `envelope_sha256`.

CREATE TABLE dead_letter_inputs (
    envelope_sha256 BLOB PRIMARY KEY,
    source          TEXT NOT NULL,
    origin          TEXT NOT NULL,
    filename        TEXT,
    received_at     INTEGER NOT NULL,
    raw_size        INTEGER NOT NULL,       -- the whole input's size
    raw             BLOB NOT NULL           -- its first bytes, up to the cap
) WITHOUT ROWID;

INSERT OR IGNORE INTO dead_letter_inputs (envelope_sha256, source, origin, received_at, raw_size, raw)
    SELECT envelope_sha256, source, origin, received_at, raw_size, raw
    FROM dead_letters WHERE raw IS NOT NULL ORDER BY id;

ALTER TABLE dead_letters DROP COLUMN raw;

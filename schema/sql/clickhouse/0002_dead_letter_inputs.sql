-- ruaflow distributed store, version 2: dead letters of one input share one copy of its
-- bytes (`dead_letter_inputs`, keyed by the input's SHA-256); `dead_letters.raw` is no
-- longer written (rows stored by version 1 keep theirs). Same portability rules as
-- 0001_init.sql.

CREATE TABLE IF NOT EXISTS dead_letter_inputs (
    envelope_sha256 FixedString(32),
    source          String,
    origin          String,
    filename        String,
    received_at     DateTime,
    raw_size        UInt64,
    raw             String,
    stored_at       DateTime
) ENGINE = ReplacingMergeTree(stored_at)
ORDER BY envelope_sha256;

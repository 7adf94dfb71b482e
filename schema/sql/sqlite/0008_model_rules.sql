-- Small facts about the store itself. `status_rules`: the status rules (declared
-- senders, learning window) the sender model's stored statuses were evaluated by; when
-- a run starts with other rules, every stored status is evaluated again.
CREATE TABLE store_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

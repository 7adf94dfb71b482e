-- The alert lifecycle: acknowledgements and backfills.
--
-- An operator acknowledges a firing notice (`ruaflow alerts ack ID --note TEXT`): its
-- episode sends nothing more. A notice about a window already older than
-- `[detect] notify_max_age_days` when it was evaluated is `historical`: stored, shown,
-- never sent. Each notice's `body` carries its episode (every day it fired on, the peak
-- and the total).

ALTER TABLE alerts ADD COLUMN historical INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE alerts ADD COLUMN ack_note TEXT;

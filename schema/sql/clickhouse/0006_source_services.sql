-- ruaflow distributed store: the mail service behind each source address, named by the
-- detector group's enrichment (processor/src/clickhouse/enrich.rs) with the same service
-- map as the embedded store's `sources.service` (processor/src/enrich/service.rs).
--
-- A table of its own rather than columns of `sources`: ClickHouse 18.16 has no
-- `ADD COLUMN IF NOT EXISTS`, and every migration statement must be safe to apply twice.
-- `service_kind` is a ServiceKind word (`esp`, `mailbox_provider`, …), `service_by` what
-- named it (`ptr`, `as_domain`, `asn`, `as_name`); a row is written only when a service
-- is named, so a later lookup that names none keeps the earlier answer, as in SQLite. The
-- newest `updated_at` per address wins (read with FINAL).
CREATE TABLE IF NOT EXISTS source_services (
    ip           String,
    service      String,
    service_kind String,
    service_by   String,
    updated_at   DateTime
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY ip;

#!/bin/bash
# Run by the ClickHouse image once, on the first start of an empty data volume
# (/docker-entrypoint-initdb.d): the read-only user Grafana queries as. It may only
# SELECT from the ruaflow database, so a dashboard cannot change the store.
# Passwords must not contain a single quote.
set -eu
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE USER IF NOT EXISTS ${GRAFANA_CLICKHOUSE_USER} IDENTIFIED WITH sha256_password BY '${GRAFANA_CLICKHOUSE_PASSWORD}';
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO ${GRAFANA_CLICKHOUSE_USER};
SQL

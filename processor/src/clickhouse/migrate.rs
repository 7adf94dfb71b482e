//! Where the ClickHouse store is, and its versioned DDL (`ruaflow migrate`).
//!
//! Migrations are the files under `schema/sql/clickhouse/`, applied in order; each
//! statement is `CREATE … IF NOT EXISTS`, so applying a migration again (after a crash
//! half-way, or from two hosts at once) is harmless, and a migration is recorded in
//! `schema_migrations` only after all its statements succeeded.

use clickhouse::Client;

use super::rows::MigrationRow;
use ruaflow_schema::Secret;

use crate::store::StoreError;

/// Versioned migrations, applied in order.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../schema/sql/clickhouse/0001_init.sql")),
    (2, include_str!("../../../schema/sql/clickhouse/0002_dead_letter_inputs.sql")),
    (3, include_str!("../../../schema/sql/clickhouse/0003_failure_reports.sql")),
    (5, include_str!("../../../schema/sql/clickhouse/0005_detect_state.sql")),
    (6, include_str!("../../../schema/sql/clickhouse/0006_source_services.sql")),
];

/// The schema version this build reads and writes.
pub const SUPPORTED_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Environment variable holding the ClickHouse password when the URL has none.
pub const PASSWORD_ENV: &str = "RUAFLOW_CLICKHOUSE_PASSWORD";

/// A ClickHouse HTTP endpoint and database: `http://[user[:password]@]host:port[/database]`.
/// The database defaults to `ruaflow`; the password may come from `RUAFLOW_CLICKHOUSE_PASSWORD`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    /// `http://host:port`.
    pub endpoint: String,
    /// Database name.
    pub database: String,
    /// User, when not the server's default.
    pub user: Option<String>,
    /// From the URL, else `RUAFLOW_CLICKHOUSE_PASSWORD` (redacted wherever printed).
    password: Option<Secret>,
}

impl std::fmt::Debug for ClickHouseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseUrl")
            .field("url", &format_args!("{self}"))
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

impl std::fmt::Display for ClickHouseUrl {
    /// The URL without its password (safe to log).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.endpoint, self.database)
    }
}

impl std::str::FromStr for ClickHouseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!(
                "ClickHouse URL must start with http:// (got {url:?}); put a TLS proxy in front for https"
            )
        })?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(format!("ClickHouse URL has no host: {url:?}"));
        }
        let database = path.trim_end_matches('/');
        let database = if database.is_empty() { "ruaflow" } else { database };
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("database name {database:?} must be letters, digits and '_'"));
        }
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (Some(user.to_owned()), Some(Secret::value(password))),
                None => (Some(info.to_owned()), None),
            },
            None => (None, None),
        };
        let password = password.or_else(|| std::env::var_os(PASSWORD_ENV).map(|_| Secret::env(PASSWORD_ENV)));
        Ok(Self { endpoint: format!("http://{host}"), database: database.to_owned(), user, password })
    }
}

impl ClickHouseUrl {
    /// A client on the database. Validation is off: ClickHouse 18.16 refuses the
    /// setting the schema lookup sends (`describe_include_subcolumns`), and the row
    /// types are checked against the DDL by the end-to-end tests instead.
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// A client on the server's default database (to create ours).
    fn server_client(&self) -> Client {
        let mut client = Client::default().with_url(&self.endpoint).with_validation(false);
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        // An unreadable password is left out: the server's refusal then says so.
        if let Some(password) = self.password.as_ref().and_then(|p| p.expose().ok()) {
            client = client.with_password(password);
        }
        client
    }
}

fn failed(what: &str) -> impl Fn(clickhouse::error::Error) -> StoreError + '_ {
    move |e| StoreError::ClickHouse(format!("{what}: {e}"))
}

/// The migrations applied to the database (none when it has none, or does not exist).
pub async fn applied_versions(client: &Client) -> Result<std::collections::BTreeSet<u32>, StoreError> {
    let exists: u8 = client
        .query("SELECT toUInt8(count()) FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'")
        .fetch_one()
        .await
        .map_err(failed("cannot read the schema version"))?;
    if exists == 0 {
        return Ok(Default::default());
    }
    let versions: Vec<u32> = client
        .query("SELECT DISTINCT version FROM schema_migrations")
        .fetch_all()
        .await
        .map_err(failed("cannot read the schema version"))?;
    Ok(versions.into_iter().collect())
}

/// Checks that every migration this build knows is applied, and none it does not know.
pub async fn check_schema(client: &Client) -> Result<(), StoreError> {
    let applied = applied_versions(client).await?;
    let newest = i64::from(SUPPORTED_VERSION);
    let found = applied.last().map_or(0, |&v| i64::from(v));
    if found > newest {
        return Err(StoreError::TooNew { found, supported: newest });
    }
    if MIGRATIONS.iter().any(|m| !applied.contains(&m.0)) {
        return Err(StoreError::TooOld { found, needed: newest });
    }
    Ok(())
}

/// Creates the database if needed and applies the pending migrations (every one not
/// applied yet, in order; numbers need not be contiguous). Returns the versions applied
/// (empty when the database was up to date).
pub async fn migrate(url: &super::ClickHouseUrl) -> Result<Vec<u32>, StoreError> {
    url.server_client()
        .query(&format!("CREATE DATABASE IF NOT EXISTS {}", url.database))
        .execute()
        .await
        .map_err(failed("cannot create the database"))?;
    let client = url.client();
    client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, applied_at DateTime)
             ENGINE = ReplacingMergeTree(applied_at) ORDER BY version",
        )
        .execute()
        .await
        .map_err(failed("cannot create schema_migrations"))?;
    let done = applied_versions(&client).await?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(&found) = done.last().filter(|&&v| v > newest) {
        return Err(StoreError::TooNew { found: i64::from(found), supported: i64::from(newest) });
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|m| !done.contains(&m.0)) {
        for statement in statements(sql) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| StoreError::ClickHouse(format!("migration {version}: {e}\nin: {statement}")))?;
        }
        let mut insert = client
            .insert::<MigrationRow>("schema_migrations")
            .await
            .map_err(failed("cannot record the migration"))?;
        insert
            .write(&MigrationRow {
                version: *version,
                applied_at: super::datetime(ruaflow_schema::clock::now()),
            })
            .await
            .map_err(failed("cannot record the migration"))?;
        insert.end().await.map_err(failed("cannot record the migration"))?;
        applied.push(*version);
    }
    Ok(applied)
}

/// The statements of a migration file: comment lines dropped, split after each line
/// that ends with `;`. `?` is escaped: the client treats it as a bind placeholder.
pub(super) fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').to_owned();
            out.push(statement);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_endpoint_database_and_user() {
        let url: ClickHouseUrl = "http://127.0.0.1:8123".parse().expect("parses");
        assert_eq!(url.endpoint, "http://127.0.0.1:8123");
        assert_eq!(url.database, "ruaflow");
        let url: ClickHouseUrl = "http://alice:s3cret@ch:8123/reports_db/".parse().expect("parses");
        assert_eq!((url.endpoint.as_str(), url.database.as_str()), ("http://ch:8123", "reports_db"));
        assert_eq!(url.user.as_deref(), Some("alice"));
        assert!(!format!("{url} {url:?}").contains("s3cret"), "the password is never printed");
        assert!("https://ch:8443".parse::<ClickHouseUrl>().is_err());
        assert!("http://ch:8123/bad-name".parse::<ClickHouseUrl>().is_err());
        assert!("http:///db".parse::<ClickHouseUrl>().is_err());
    }

    #[test]
    fn migration_files_split_into_statements() {
        let all = statements(MIGRATIONS[0].1);
        assert_eq!(all.len(), 11, "one CREATE TABLE per table of the store");
        assert!(all.iter().all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS")), "{all:#?}");
        assert!(all.iter().all(|s| !s.contains("--") && !s.ends_with(';')));
    }
}

//! The configuration file (TOML). Every section is optional; with no file at all the
//! defaults apply, and ruaflow works with no configuration. See `ruaflow.example.toml`.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use ruaflow_ingest::http::HttpConfig;
use ruaflow_ingest::imap::ImapConfig;
use ruaflow_processor::detect::{DeclaredSender, DetectConfig};
use ruaflow_processor::enrich::EnrichConfig;
use ruaflow_processor::redact::PrivacyConfig;
use ruaflow_processor::retention::RetentionConfig;
use ruaflow_processor::sink::SinkConfig;
use ruaflow_schema::Limits;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Caps on untrusted input (`[limits]`).
    pub limits: Limits,
    /// Detector thresholds (`[detect]`).
    pub detect: DetectConfig,
    /// The senders the owner declares per domain (`[[senders]]`, any number).
    pub senders: Vec<DeclaredSender>,
    /// Where alerts go besides the store and the log (`[alerts]`).
    pub alerts: SinkConfig,
    /// Reverse DNS and MaxMind databases (`[enrich]`).
    pub enrich: EnrichConfig,
    /// What of a failure report's original message is stored (`[failure_reports]`):
    /// nothing personal unless allowed.
    pub failure_reports: PrivacyConfig,
    /// The HTTP endpoint (`[http]`); served by `ruaflow run` without `--once`.
    pub http: Option<HttpConfig>,
    /// IMAP mailboxes to read reports from (`[[imap]]`, any number); watched by `ruaflow
    /// run` and `ruaflow ingest imap`, read once with `--once`.
    pub imap: Vec<ImapConfig>,
    /// How long stored data is kept (`[retention]`); applied while `ruaflow run` runs
    /// and by `ruaflow prune`.
    pub retention: RetentionConfig,
    /// How input files and directories are walked (`[files]`).
    pub files: ruaflow_ingest::dir::DirConfig,
    /// Prometheus metrics of `ruaflow run` (`[metrics]`).
    pub metrics: MetricsConfig,
}

/// `[metrics]`: where `ruaflow run` serves Prometheus `/metrics` (pipeline counters,
/// queue depth, detection latency), apart from the report endpoint.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port` to listen on; unset, nothing is served.
    pub listen: Option<std::net::SocketAddr>,
}

impl Config {
    /// Loads and validates the file, or returns the defaults when there is none. Nothing
    /// connects anywhere before this succeeded.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        config.alerts.validate().with_context(|| format!("invalid [alerts] in {}", path.display()))?;
        config
            .detect
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid [detect] in {}: {e}", path.display()))?;
        for (i, sender) in config.senders.iter().enumerate() {
            sender
                .validate()
                .map_err(|e| anyhow::anyhow!("invalid [[senders]] #{} in {}: {e}", i + 1, path.display()))?;
        }
        config.detect.senders = config.senders.clone();
        config.enrich.validate().with_context(|| format!("invalid [enrich] in {}", path.display()))?;
        if let Some(http) = &config.http {
            http.validate().with_context(|| format!("invalid [http] in {}", path.display()))?;
        }
        config.validate_retention().with_context(|| format!("invalid [retention] in {}", path.display()))?;
        for (i, imap) in config.imap.iter().enumerate() {
            imap.validate().with_context(|| format!("invalid [[imap]] #{} in {}", i + 1, path.display()))?;
        }
        Ok(config)
    }
}

impl Config {
    /// `[retention]` on its own, and against detection: the baselines are learned from
    /// the daily aggregates, so those must outlive the baseline window.
    pub fn validate_retention(&self) -> anyhow::Result<()> {
        self.retention.validate()?;
        if let Some(days) = self.retention.aggregates_days {
            if i64::from(days) < self.detect.baseline_days {
                anyhow::bail!(
                    "aggregates_days ({days}) must be at least [detect] baseline_days ({}): detection learns from those days",
                    self.detect.baseline_days
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn the_example_config_is_valid_and_typos_are_rejected() {
        let example: Config =
            toml::from_str(include_str!("../../ruaflow.example.toml")).expect("example parses");
        example.alerts.validate().expect("valid alerts");
        assert_eq!(example.senders.len(), 1);
        example.senders[0].validate().expect("valid sender");
        assert_eq!(example.senders[0].networks.len(), 2);
        assert!(example.alerts.webhooks.is_empty(), "the example sends nothing anywhere as it is");
        assert!(example.http.is_none(), "the example starts no server as it is");
        let with_http: Config =
            toml::from_str("[http]\nlisten = \"127.0.0.1:8080\"\ntoken = \"s3cret-token\"\n")
                .expect("http parses");
        with_http.http.as_ref().expect("http section").validate().expect("valid http");
        assert!(
            toml::from_str::<Config>("[http]\nlisten = \"127.0.0.1:1\"\nmax_body_mb = 1\n").is_err(),
            "unknown [http] keys are errors"
        );
        assert!(
            toml::from_str::<Config>("[detect]\nreplay_min_mesages = 5\n").is_err(),
            "unknown keys are errors"
        );
        let retention: Config =
            toml::from_str("[retention]\nrecords_days = 30\naggregates_days = 20\n").expect("parses");
        assert!(retention.validate_retention().is_err(), "aggregates kept shorter than records");
        let retention: Config = toml::from_str("[retention]\naggregates_days = 7\n").expect("parses");
        assert!(retention.validate_retention().is_err(), "aggregates kept shorter than the baseline");
        assert!(example.validate_retention().is_ok());
        let empty: Config = toml::from_str("").expect("empty parses");
        assert_eq!(empty.limits, Limits::default());
        assert_eq!(empty.failure_reports, PrivacyConfig::default(), "redaction is on by default");
        assert_eq!(example.failure_reports, PrivacyConfig::default(), "the example keeps redaction on");
        assert!(
            toml::from_str::<Config>("[failure_reports]\nstore_subjects = true\n").is_err(),
            "unknown [failure_reports] keys are errors"
        );
    }

    /// `example` with its commented-out settings (`# key = …`, `# [section]`,
    /// `# [[section]]`) switched on: every setting a user can copy from it.
    fn switched_on(example: &str) -> String {
        let setting = |line: &str| {
            let line = line.trim_start();
            let key = line.split_once(" = ").map_or("", |(key, _)| key);
            line.starts_with('[')
                || (!key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        };
        example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if setting(rest) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_compose_config_is_valid_with_its_mailbox_switched_on() {
        // Read at run time: dashboards/ is not part of the image's build context.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/compose/ruaflow.toml");
        let text = switched_on(&std::fs::read_to_string(path).expect("read the compose config"));
        let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        assert_eq!(config.imap.len(), 1, "the ingest-imap service's mailbox");
        config.imap[0].validate().expect("a valid mailbox");
        config.http.as_ref().expect("the ingest-http endpoint").validate().expect("a valid endpoint");
    }

    /// The field names serde derives for `T` (a struct): read from the list the derived
    /// `Deserialize` hands to `deserialize_struct`.
    fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::{Error as _, Visitor};
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Self::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(Self::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        assert!(!fields.is_empty(), "{} is not a struct", std::any::type_name::<T>());
        fields
    }

    /// The keys of every table of `value`, by dotted path (the tables of an array of
    /// tables together under the array's path).
    fn keys_by_path(value: &toml::Value, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    out.entry(path.to_owned()).or_default().insert(key.clone());
                    let inner = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    keys_by_path(value, &inner, out);
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|item| keys_by_path(item, path, out)),
            _ => {}
        }
    }

    #[test]
    fn the_example_config_shows_every_key() {
        let text = switched_on(include_str!("../../ruaflow.example.toml"));
        let all: Config = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("the example with every setting switched on: {e}\n{text}"));
        assert!(all.http.is_some() && !all.imap.is_empty(), "commented-out sections count");
        assert!(!all.alerts.email.is_empty(), "the email section counts");
        let email = SinkConfig { email: all.alerts.email.clone(), ..SinkConfig::default() };
        email.validate().unwrap_or_else(|e| panic!("the example [[alerts.email]]: {e}"));
        for imap in &all.imap {
            imap.validate().unwrap_or_else(|e| panic!("the example mailbox {}: {e}", imap.host));
        }
        all.validate_retention().expect("the retention example is valid");
        assert!(all.retention.is_set());
        // The values shown are the defaults.
        assert_eq!(all.limits, Limits::default());
        let defaults = DetectConfig::default();
        assert_eq!(all.detect, defaults);
        defaults.validate().expect("the defaults are valid");
        let huge = DetectConfig { baseline_days: 1 << 50, ..DetectConfig::default() };
        assert!(huge.validate().is_err_and(|e| e.contains("baseline_days")));
        let nan = DetectConfig { replay_ratio: f64::NAN, ..DetectConfig::default() };
        assert!(nan.validate().is_err_and(|e| e.contains("replay_ratio")));
        let value: toml::Value = toml::from_str(&text).expect("parses");
        let mut keys = BTreeMap::new();
        keys_by_path(&value, "", &mut keys);
        let sections: [(&str, &[&str]); 16] = [
            ("", fields_of::<Config>()),
            ("retention", fields_of::<RetentionConfig>()),
            ("failure_reports", fields_of::<PrivacyConfig>()),
            ("limits", fields_of::<Limits>()),
            ("detect", fields_of::<DetectConfig>()),
            ("senders", fields_of::<DeclaredSender>()),
            ("alerts", fields_of::<SinkConfig>()),
            ("alerts.webhooks", fields_of::<ruaflow_processor::sink::WebhookConfig>()),
            ("alerts.alertmanager", fields_of::<ruaflow_processor::sink::AlertmanagerConfig>()),
            ("alerts.email", fields_of::<ruaflow_processor::sink::EmailConfig>()),
            ("enrich", fields_of::<EnrichConfig>()),
            ("http", fields_of::<HttpConfig>()),
            ("imap", fields_of::<ImapConfig>()),
            ("imap.oauth2", fields_of::<ruaflow_ingest::imap::OAuth2Config>()),
            ("files", fields_of::<ruaflow_ingest::dir::DirConfig>()),
            ("metrics", fields_of::<MetricsConfig>()),
        ];
        let mut missing = Vec::new();
        for (path, fields) in sections {
            let shown = keys.get(path).cloned().unwrap_or_default();
            for field in fields {
                if !shown.contains(*field) {
                    missing.push(if path.is_empty() {
                        (*field).to_owned()
                    } else {
                        format!("{path}.{field}")
                    });
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys the binary accepts but ruaflow.example.toml does not show: {missing:?}"
        );
    }
}

//! The configuration file (TOML). Every section is optional; with no file at all the
//! defaults apply, and ruaflow works with no configuration. See `ruaflow.example.toml`.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use ruaflow_ingest::http::HttpConfig;
use ruaflow_ingest::imap::ImapConfig;
use ruaflow_processor::detect::DetectConfig;
use ruaflow_processor::enrich::EnrichConfig;
use ruaflow_processor::retention::RetentionConfig;
use ruaflow_processor::sink::SinkConfig;
use ruaflow_schema::Limits;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Caps on untrusted input (`[limits]`).
    pub limits: Limits,
    /// Detector thresholds and known senders (`[detect]`).
    pub detect: DetectConfig,
    /// Where alerts go besides the store and the log (`[alerts]`).
    pub alerts: SinkConfig,
    /// Reverse DNS and MaxMind databases (`[enrich]`).
    pub enrich: EnrichConfig,
    /// The HTTP endpoint (`[http]`); served by `ruaflow run` without `--once`.
    pub http: Option<HttpConfig>,
    /// IMAP mailboxes to read reports from (`[[imap]]`, any number); read by `ruaflow run`
    /// without `--once`.
    pub imap: Vec<ImapConfig>,
    /// How long stored data is kept (`[retention]`); applied while `ruaflow run` runs
    /// and by `ruaflow prune`.
    pub retention: RetentionConfig,
    /// How input files and directories are walked (`[files]`).
    pub files: ruaflow_ingest::dir::DirConfig,
}

impl Config {
    /// Loads and validates the file, or returns the defaults when there is none. Nothing
    /// connects anywhere before this succeeded.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        config.alerts.validate().with_context(|| format!("invalid [alerts] in {}", path.display()))?;
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
    use super::*;

    /// The example with its commented keys and sections switched on: `# key = value` and
    /// `# [section]` lines lose their `# ` (explanations stay comments).
    fn example_uncommented() -> String {
        let key = |line: &str| {
            let rest = line.trim_start_matches("# ");
            rest.starts_with('[')
                || rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        };
        include_str!("../../ruaflow.example.toml")
            .lines()
            .map(|l| if l.starts_with("# ") && key(l) { l.trim_start_matches("# ") } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_key_the_example_shows_is_a_real_key() {
        let text = example_uncommented();
        let full: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(full.imap.len(), 1, "the [[imap]] example");
        assert_eq!(full.alerts.webhooks.len(), 1, "the webhook example");
        assert!(full.alerts.webhooks[0].bearer_token.is_some(), "with its bearer token");
        assert!(full.http.as_ref().is_some_and(|h| h.token_file.is_some()), "the [http] example");
        assert_eq!(full.retention.aggregates_days, Some(730));
        full.validate_retention().expect("the retention example is valid");
        // The values shown are the defaults.
        assert_eq!(full.limits, Limits::default());
        let defaults = ruaflow_processor::detect::DetectConfig::default();
        assert_eq!(
            format!("{:?}", DetectConfig { known_senders: defaults.known_senders.clone(), ..full.detect }),
            format!("{defaults:?}")
        );
    }

    #[test]
    fn the_example_config_is_valid_and_typos_are_rejected() {
        let example: Config =
            toml::from_str(include_str!("../../ruaflow.example.toml")).expect("example parses");
        example.alerts.validate().expect("valid alerts");
        assert_eq!(example.detect.known_networks("example.com").len(), 2);
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
    }
}

//! The configuration file (TOML). Every section is optional; with no file at all the
//! defaults apply, and ruaflow works with no configuration.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use ruaflow_schema::Limits;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Caps on untrusted input (`[limits]`).
    pub limits: Limits,
}

impl Config {
    /// Loads and validates the file, or returns the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }
}

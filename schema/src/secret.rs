//! Secrets in the configuration: passwords, client secrets, refresh tokens.
//!
//! A [`Secret`] says where its value is — written in the config itself, in a file, or in
//! an environment variable — and reads it only when asked ([`Secret::expose`]), so a
//! rotated file is picked up at the next use. Its `Debug` and `Display` name the file or
//! the variable, never the value, so a config printed or logged leaks nothing.
//!
//! In TOML a secret is one key with one of three forms:
//!
//! ```toml
//! password = "the value itself"                        # discouraged: the config then holds it
//! password = { file = "/etc/ruaflow/imap.password" }   # surrounding whitespace ignored
//! password = { env = "RUAFLOW_IMAP_PASSWORD" }
//! ```

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The largest secret file read, in bytes: a secret is a line, not a document, and a
/// path pointing at the wrong (large) file should fail rather than fill memory.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Where a secret's value comes from; the value is read by [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Origin);

#[derive(Clone, PartialEq, Eq)]
enum Origin {
    Value(String),
    File(PathBuf),
    Env(String),
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file could not be read (or is larger than a secret can be).
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The configured file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The environment variable is not set (or not valid UTF-8).
    #[error("environment variable {0} is not set")]
    Env(String),
    /// The value is empty once surrounding whitespace is removed.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl Secret {
    /// A secret whose value is given directly.
    pub fn value(value: impl Into<String>) -> Self {
        Self(Origin::Value(value.into()))
    }

    /// A secret read from `path` at each use.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self(Origin::File(path.into()))
    }

    /// A secret read from the environment variable `name` at each use.
    pub fn env(name: impl Into<String>) -> Self {
        Self(Origin::Env(name.into()))
    }

    /// True when the value is written in the configuration itself (checkable at load).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Origin::Value(_))
    }

    /// Reads the value now: as given, the file's content, or the variable's, without
    /// surrounding whitespace (a trailing newline in a file is not part of a password).
    /// Use it right away and never log it.
    pub fn expose(&self) -> Result<String, SecretError> {
        let value = match &self.0 {
            Origin::Value(value) => value.clone(),
            Origin::File(path) => read_file(path)?,
            Origin::Env(name) => std::env::var(name).map_err(|_| SecretError::Env(name.clone()))?,
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(if trimmed.len() == value.len() { value } else { trimmed.to_owned() })
    }
}

fn read_file(path: &Path) -> Result<String, SecretError> {
    let err = |reason: String| SecretError::File { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(err(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(text)
}

/// Where the value is, never the value: `the config file`, `file PATH`, `environment
/// variable NAME`.
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Origin::Value(_) => f.write_str("the config file"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Origin::Value(_) => f.write_str("Secret([redacted])"),
            Origin::File(path) => write!(f, "Secret(file {path:?})"),
            Origin::Env(name) => write!(f, "Secret(env {name:?})"),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a secret: "VALUE", { file = "PATH" } or { env = "NAME" }"#)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret::value(value))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        let mut found: Option<Secret> = None;
        while let Some(key) = map.next_key::<String>()? {
            let secret = match key.as_str() {
                "file" => Secret::file(map.next_value::<PathBuf>()?),
                "env" => Secret::env(map.next_value::<String>()?),
                other => return Err(de::Error::unknown_field(other, &["file", "env"])),
            };
            if found.replace(secret).is_some() {
                return Err(de::Error::custom("a secret takes one of `file` or `env`, not both"));
            }
        }
        found.ok_or_else(|| de::Error::custom(r#"a secret needs `file = "PATH"` or `env = "NAME"`"#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        secret: Secret,
    }

    fn parse(toml_value: &str) -> Result<Secret, String> {
        // A minimal TOML reader is not a dependency of this crate; JSON has the same shapes.
        serde_json::from_str::<Holder>(&format!("{{\"secret\": {toml_value}}}"))
            .map(|h| h.secret)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn three_forms_and_no_leak() {
        let value = parse("\"hunter2\"").expect("a string");
        assert_eq!(value.expose().expect("value"), "hunter2");
        assert!(!format!("{value:?} {value}").contains("hunter2"), "never shown");

        let dir = std::env::temp_dir().join(format!("ruaflow-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("password");
        std::fs::write(&path, "from-a-file\n").expect("write");
        let file = parse(&format!("{{\"file\": {:?}}}", path.display().to_string())).expect("a file");
        assert_eq!(file.expose().expect("file"), "from-a-file", "the newline is not part of it");
        std::fs::write(&path, "rotated\n").expect("rewrite");
        assert_eq!(file.expose().expect("file"), "rotated", "read at each use");
        assert!(format!("{file:?}").contains("password") && !format!("{file:?}").contains("rotated"));
        std::fs::write(&path, "  \n").expect("blank");
        assert!(matches!(file.expose(), Err(SecretError::Empty(_))));
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(matches!(file.expose(), Err(SecretError::File { .. })));

        let env = parse("{\"env\": \"RUAFLOW_SECRET_TEST_SURELY_UNSET\"}").expect("an env");
        assert_eq!(env.to_string(), "environment variable RUAFLOW_SECRET_TEST_SURELY_UNSET");
        assert!(matches!(env.expose(), Err(SecretError::Env(_))));
        let path_var = Secret::env("PATH");
        assert!(path_var.expose().is_ok_and(|v| !v.is_empty()));
    }

    #[test]
    fn malformed_forms_are_refused() {
        assert!(parse("{}").is_err(), "empty table");
        assert!(parse("{\"file\": \"a\", \"env\": \"B\"}").is_err(), "two origins");
        let typo = parse("{\"path\": \"a\"}").expect_err("unknown key");
        assert!(typo.contains("`file`") && typo.contains("`env`"), "{typo}");
        assert!(parse("42").is_err(), "not a string");
    }
}

//! Config layering: built-in defaults → a TOML file → environment variables, under which each
//! binary adds its command-line flags; and the error both daemons' settings return.

use std::path::{Path, PathBuf};

/// A configuration that cannot be used: unreadable or malformed, or a key with a bad value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// A section checked by its own crate (the publisher's `[broker]`), whose message names
    /// its keys itself.
    #[error(transparent)]
    Section(Box<dyn std::error::Error + Send + Sync>),
}

/// A [`SettingsError::Invalid`] for `key`.
pub fn invalid(key: &'static str, reason: impl ToString) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

/// The largest configuration file read (1 MiB; the shipped ones are ~3 KB).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1 << 20;

/// The first layers of every binary's settings: built-in `defaults` → the TOML `file` (which
/// must exist when given; read at once, and every error with it names its path: an unknown
/// key or a bad value in it as well as a syntax error) → environment variables
/// `<env_prefix>_<SECTION>__<KEY>` (lists comma-separated for `list_keys`). Callers add their
/// command-line overrides on top.
pub fn layered_config<T: serde::Serialize + serde::de::DeserializeOwned>(
    defaults: &T,
    file: Option<&Path>,
    env_prefix: &str,
    list_keys: &[&str],
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, config::ConfigError> {
    let defaults = config::Config::try_from(defaults)?;
    let mut builder = config::Config::builder().add_source(defaults.clone());
    if let Some(file) = file {
        let toml = TomlFile::read(file)?;
        check_file::<T>(defaults, &toml, file)?;
        builder = builder.add_source(toml);
    }
    let mut env = config::Environment::with_prefix(env_prefix)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true);
    if !list_keys.is_empty() {
        env = env.list_separator(",");
        for key in list_keys {
            env = env.with_list_parse_key(key);
        }
    }
    Ok(builder.add_source(env))
}

/// The file over the defaults alone must give a `T`: once the layers are merged, an unknown
/// key or a bad value can no longer be traced to the file it came from.
fn check_file<T: serde::de::DeserializeOwned>(
    defaults: config::Config,
    file: &TomlFile,
    path: &Path,
) -> Result<(), config::ConfigError> {
    let merged = config::Config::builder()
        .add_source(defaults)
        .add_source(file.clone())
        .build()?;
    match merged.try_deserialize::<T>() {
        Ok(_) => Ok(()),
        // A value of the wrong type already says `in PATH`.
        Err(error) if error.to_string().contains(&file.uri) => Err(error),
        Err(error) => {
            let path = path.to_owned();
            let error = match unknown_key(&error) {
                Some((key, expected)) => ConfigFileError::UnknownKey {
                    path,
                    key,
                    expected,
                },
                None => ConfigFileError::Value {
                    path,
                    error: error.to_string(),
                },
            };
            Err(config::ConfigError::Foreign(Box::new(error)))
        }
    }
}

/// The dotted key and serde's list of the expected ones from a `deny_unknown_fields` error
/// ("unknown field `hots`, expected one of … for key `mqtt`").
fn unknown_key(error: &config::ConfigError) -> Option<(String, String)> {
    let (section, message) = match error {
        config::ConfigError::At { error, key, .. } => match error.as_ref() {
            config::ConfigError::Message(message) => (key.as_deref(), message),
            _ => return None,
        },
        config::ConfigError::Message(message) => (None, message),
        _ => return None,
    };
    let (field, expected) = message.strip_prefix("unknown field `")?.split_once("`, ")?;
    let key = match section {
        Some(section) if !section.is_empty() => format!("{section}.{field}"),
        _ => field.to_owned(),
    };
    Some((key, expected.to_owned()))
}

/// A configuration file that cannot be used; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("unknown key `{key}` in {}, {expected}", path.display())]
    UnknownKey {
        path: PathBuf,
        key: String,
        expected: String,
    },
    #[error("{error} in {}", path.display())]
    Value { path: PathBuf, error: String },
}

/// A TOML file read once, up front, so that an unreadable file (a service user that may not
/// read it, a directory, a missing file) is reported with its path; a syntax error names it
/// too (`… in PATH`).
#[derive(Debug, Clone)]
struct TomlFile {
    uri: String,
    text: String,
}

impl TomlFile {
    fn read(path: &Path) -> Result<TomlFile, config::ConfigError> {
        use std::io::Read;
        let foreign = |e: ConfigFileError| config::ConfigError::Foreign(Box::new(e));
        let read_error = |error| {
            foreign(ConfigFileError::Read {
                path: path.to_owned(),
                error,
            })
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(read_error)?;
        if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
            return Err(foreign(ConfigFileError::TooLarge {
                path: path.to_owned(),
                limit: MAX_CONFIG_FILE_BYTES,
            }));
        }
        if let Some(rest) = text.strip_prefix('\u{feff}') {
            text = rest.to_owned();
        }
        Ok(TomlFile {
            uri: path.display().to_string(),
            text,
        })
    }
}

impl config::Source for TomlFile {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        use config::Format;
        config::FileFormat::Toml
            .parse(Some(&self.uri), &self.text)
            .map_err(|cause| config::ConfigError::FileParse {
                uri: Some(self.uri.clone()),
                cause,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Conf {
        name: String,
    }

    fn load(path: &Path) -> Result<Conf, config::ConfigError> {
        let defaults = Conf {
            name: "default".into(),
        };
        layered_config(&defaults, Some(path), "SA_DAEMON_TEST", &[])?
            .build()?
            .try_deserialize()
    }

    fn error_of(path: &Path) -> String {
        match load(path) {
            Ok(_) => panic!("{} loaded", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn settings_errors_name_their_key() {
        assert_eq!(
            invalid("http.bind", "must be an address").to_string(),
            "configuration key `http.bind`: must be an address"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("configuration key `broker.users`: at most 64 entries")]
        struct Section;
        assert_eq!(
            SettingsError::Section(Box::new(Section)).to_string(),
            "configuration key `broker.users`: at most 64 entries"
        );
    }

    #[test]
    fn a_readable_file_is_layered_over_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "\u{feff}name = \"file\"\n").unwrap();
        assert_eq!(load(&path).unwrap().name, "file");
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Strict {
        port: u16,
        http: Section,
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Section {
        bind: std::net::IpAddr,
        timeout: u32,
    }

    impl Default for Strict {
        fn default() -> Strict {
            Strict {
                port: 1,
                http: Section::default(),
            }
        }
    }

    impl Default for Section {
        fn default() -> Section {
            Section {
                bind: [127, 0, 0, 1].into(),
                timeout: 5,
            }
        }
    }

    fn strict_error(text: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strict.toml");
        std::fs::write(&path, text).unwrap();
        let loaded = layered_config(&Strict::default(), Some(&path), "SA_DAEMON_STRICT", &[])
            .and_then(|b| b.build()?.try_deserialize::<Strict>());
        match loaded {
            Ok(_) => panic!("{text:?} loaded"),
            Err(e) => (
                SettingsError::from(e).to_string(),
                path.display().to_string(),
            ),
        }
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_in_the_file_names_the_file_and_the_key() {
        let (msg, file) = strict_error("[http]\nbnd = \"x\"\n");
        assert_eq!(
            msg,
            format!(
                "configuration: unknown key `http.bnd` in {file}, expected `bind` or `timeout`"
            )
        );
        let (msg, file) = strict_error("prot = 2\n");
        assert_eq!(
            msg,
            format!("configuration: unknown key `prot` in {file}, expected `port` or `http`")
        );
        let (msg, file) = strict_error("[http]\nbind = \"everywhere\"\n");
        assert_eq!(
            msg,
            format!("configuration: invalid IP address syntax for key `http.bind` in {file}")
        );
        // A value of the wrong type names the file once.
        let (msg, file) = strict_error("[http]\ntimeout = \"soon\"\n");
        assert_eq!(msg.matches(&file).count(), 1, "{msg}");
        assert!(msg.contains("http.timeout"), "{msg}");
    }

    #[test]
    fn every_file_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let msg = error_of(&missing);
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");

        let directory = dir.path().join("dir.toml");
        std::fs::create_dir(&directory).unwrap();
        let msg = error_of(&directory);
        assert!(msg.contains(&directory.display().to_string()), "{msg}");
        assert!(msg.contains("Is a directory"), "{msg}");

        // Unreadable even for root (who reads any 0000 file): reading /proc/self/mem at
        // offset 0 fails with EIO, like a read of a file the process may not read.
        let unreadable = Path::new("/proc/self/mem");
        let msg = error_of(unreadable);
        assert!(msg.contains("/proc/self/mem"), "{msg}");

        let invalid = dir.path().join("invalid.toml");
        std::fs::write(&invalid, "name = \n").unwrap();
        let msg = error_of(&invalid);
        assert!(msg.contains(&invalid.display().to_string()), "{msg}");

        let huge = dir.path().join("huge.toml");
        let line = format!("# {}\n", "x".repeat(1000));
        std::fs::write(
            &huge,
            line.repeat(MAX_CONFIG_FILE_BYTES as usize / 1000 + 1),
        )
        .unwrap();
        let msg = error_of(&huge);
        assert!(msg.contains(&huge.display().to_string()), "{msg}");
        assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
    }
}

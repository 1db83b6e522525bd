//! Configuration: CLI flags, then environment, then a YAML config file, then defaults.
//!
//! Every setting has one name (LISTEN_ADDR, ...): the environment variable, the config file key
//! (upper or lower case) and, lower-cased with dashes, the flag (`--listen-addr`). A bad value
//! fails at start with one line naming the setting, the value and where it came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::store::sqlite::Durability;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that does not parse or is out of range.
    #[error("invalid {name}={value:?} (from {origin}): {reason}")]
    Invalid {
        /// Setting name.
        name: &'static str,
        /// The offending value.
        value: String,
        /// flag, environment, config file.
        origin: &'static str,
        /// What was expected.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The path given.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not a YAML mapping of known settings.
    #[error("config file {path}: {reason}")]
    BadFile {
        /// The path given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The command line did not parse (also carries --help and --version output).
    #[error("{0}")]
    Cli(#[from] clap::Error),
}

/// Command-line flags; each overrides the environment variable of the same name.
#[derive(Debug, Default, Parser)]
#[command(
    name = "collector",
    version,
    about = "Collects events over HTTP; GET them back."
)]
pub struct Cli {
    /// YAML config file (also CONFIG_FILE); lowest precedence above the defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, `:8080` or `127.0.0.1:8080` (LISTEN_ADDR).
    #[arg(long)]
    pub listen_addr: Option<String>,
    /// trace, debug, info, warn or error (LOG_LEVEL).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Days to keep events; 0 keeps them forever (RETENTION_DAYS).
    #[arg(long)]
    pub retention_days: Option<String>,
    /// Most events one POST may carry (MAX_BATCH_SIZE).
    #[arg(long)]
    pub max_batch_size: Option<String>,
    /// Largest POST body in bytes (MAX_BODY_BYTES).
    #[arg(long)]
    pub max_body_bytes: Option<String>,
    /// Directory for the SQLite database (DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<String>,
    /// Postgres connection string; selects Postgres (POSTGRES_CONNECTION_STRING or DATABASE_URL).
    #[arg(long)]
    pub postgres_connection_string: Option<String>,
    /// Redis URL for the recent-events cache (REDIS_URL).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// NATS URL to ingest events from (NATS_URL).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// NATS subject to subscribe to (NATS_SUBJECT).
    #[arg(long)]
    pub nats_subject: Option<String>,
    /// Seconds to keep serving after SIGTERM while readiness already fails (SHUTDOWN_DELAY_SECONDS).
    #[arg(long)]
    pub shutdown_delay_seconds: Option<String>,
    /// `full` (default: acknowledged events survive power loss) or `normal` (process crashes only) (SQLITE_SYNCHRONOUS).
    #[arg(long)]
    pub sqlite_synchronous: Option<String>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub listen_addr: SocketAddr,
    /// Log filter directive.
    pub log_level: String,
    /// Days to keep events; 0 means forever.
    pub retention_days: u32,
    /// Most events per POST.
    pub max_batch_size: usize,
    /// Largest POST body.
    pub max_body_bytes: usize,
    /// SQLite data directory.
    pub data_dir: PathBuf,
    /// Postgres connection string, if Postgres is the store.
    pub postgres: Option<String>,
    /// Redis URL, if the cache is on.
    pub redis_url: Option<String>,
    /// NATS URL, if NATS ingestion is on.
    pub nats_url: Option<String>,
    /// NATS subject.
    pub nats_subject: String,
    /// Drain delay after SIGTERM.
    pub shutdown_delay_seconds: u64,
    /// What an acknowledged SQLite write survives.
    pub sqlite_durability: Durability,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            log_level: "info".into(),
            retention_days: 30,
            max_batch_size: 1000,
            max_body_bytes: 1 << 20,
            data_dir: PathBuf::from("data"),
            postgres: None,
            redis_url: None,
            nats_url: None,
            nats_subject: "events".into(),
            shutdown_delay_seconds: 0,
            sqlite_durability: Durability::default(),
        }
    }
}

/// One layer's raw values, by setting name.
struct Layer {
    origin: &'static str,
    values: HashMap<String, String>,
}

impl Config {
    /// Loads from process arguments and environment.
    pub fn from_process() -> Result<Self, ConfigError> {
        let cli = Cli::try_parse()?;
        Self::load(cli, |k| std::env::var(k).ok())
    }

    /// Resolves the layers; `env` is a lookup so tests need not touch the process environment.
    pub fn load(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let flags = Layer {
            origin: "flag",
            values: cli_values(&cli),
        };
        let mut env_values = HashMap::new();
        for name in NAMES.iter().chain(["DATABASE_URL"].iter()) {
            if let Some(v) = env(name) {
                env_values.insert(name.to_string(), v);
            }
        }
        let environment = Layer {
            origin: "environment",
            values: env_values,
        };
        let config_path = cli
            .config
            .clone()
            .or_else(|| env("CONFIG_FILE").map(PathBuf::from));
        let file = match config_path {
            Some(p) => Layer {
                origin: "config file",
                values: read_file(&p)?,
            },
            None => Layer {
                origin: "config file",
                values: HashMap::new(),
            },
        };
        let layers = [flags, environment, file];
        let lookup = |name: &'static str| -> Option<(String, &'static str, &'static str)> {
            layers
                .iter()
                .find_map(|l| l.values.get(name).map(|v| (v.clone(), l.origin, name)))
        };
        let d = Config::default();
        let postgres = lookup("POSTGRES_CONNECTION_STRING")
            .or_else(|| lookup("DATABASE_URL"))
            .map(|(v, ..)| v)
            .filter(|v| !v.is_empty());
        Ok(Config {
            listen_addr: setting(lookup("LISTEN_ADDR"), d.listen_addr, parse_listen_addr)?,
            log_level: setting(lookup("LOG_LEVEL"), d.log_level, parse_log_level)?,
            retention_days: setting(lookup("RETENTION_DAYS"), d.retention_days, |v| {
                v.parse::<u32>()
                    .map_err(|_| "expected a whole number of days (0 keeps events forever)".into())
            })?,
            max_batch_size: setting(lookup("MAX_BATCH_SIZE"), d.max_batch_size, |v| {
                range(v, 1, 100_000)
            })?,
            max_body_bytes: setting(lookup("MAX_BODY_BYTES"), d.max_body_bytes, |v| {
                range(v, 1024, 256 << 20)
            })?,
            data_dir: setting(lookup("DATA_DIR"), d.data_dir, |v| {
                non_empty(v).map(PathBuf::from)
            })?,
            postgres,
            redis_url: lookup("REDIS_URL")
                .map(|(v, ..)| v)
                .filter(|v| !v.is_empty()),
            nats_url: lookup("NATS_URL")
                .map(|(v, ..)| v)
                .filter(|v| !v.is_empty()),
            nats_subject: setting(lookup("NATS_SUBJECT"), d.nats_subject, non_empty)?,
            shutdown_delay_seconds: setting(
                lookup("SHUTDOWN_DELAY_SECONDS"),
                d.shutdown_delay_seconds,
                |v| range(v, 0, 3600).map(|n| n as u64),
            )?,
            sqlite_durability: setting(lookup("SQLITE_SYNCHRONOUS"), d.sqlite_durability, |v| {
                match v.to_lowercase().as_str() {
                    "normal" => Ok(Durability::Process),
                    "full" => Ok(Durability::Host),
                    _ => Err("expected normal or full".into()),
                }
            })?,
        })
    }
}

/// Every setting name, as the environment spells it.
const NAMES: [&str; 13] = [
    "LISTEN_ADDR",
    "LOG_LEVEL",
    "RETENTION_DAYS",
    "MAX_BATCH_SIZE",
    "MAX_BODY_BYTES",
    "DATA_DIR",
    "POSTGRES_CONNECTION_STRING",
    "REDIS_URL",
    "NATS_URL",
    "NATS_SUBJECT",
    "SHUTDOWN_DELAY_SECONDS",
    "CONFIG_FILE",
    "SQLITE_SYNCHRONOUS",
];

fn cli_values(cli: &Cli) -> HashMap<String, String> {
    let pairs = [
        ("LISTEN_ADDR", &cli.listen_addr),
        ("LOG_LEVEL", &cli.log_level),
        ("RETENTION_DAYS", &cli.retention_days),
        ("MAX_BATCH_SIZE", &cli.max_batch_size),
        ("MAX_BODY_BYTES", &cli.max_body_bytes),
        ("DATA_DIR", &cli.data_dir),
        (
            "POSTGRES_CONNECTION_STRING",
            &cli.postgres_connection_string,
        ),
        ("REDIS_URL", &cli.redis_url),
        ("NATS_URL", &cli.nats_url),
        ("NATS_SUBJECT", &cli.nats_subject),
        ("SHUTDOWN_DELAY_SECONDS", &cli.shutdown_delay_seconds),
        ("SQLITE_SYNCHRONOUS", &cli.sqlite_synchronous),
    ];
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
        .collect()
}

fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: shown.clone(),
        source,
    })?;
    let bad = |reason: String| ConfigError::BadFile {
        path: shown.clone(),
        reason,
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(HashMap::new()),
        _ => return Err(bad("expected a mapping of settings".into())),
    };
    let mut out = HashMap::new();
    for (k, v) in map {
        let key = k
            .as_str()
            .ok_or_else(|| bad("keys must be strings".into()))?
            .to_uppercase()
            .replace('-', "_");
        if !NAMES.contains(&key.as_str()) && key != "DATABASE_URL" {
            return Err(bad(format!("unknown setting {key}")));
        }
        let value = match v {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            _ => return Err(bad(format!("{key} must be a scalar"))),
        };
        out.insert(key, value);
    }
    Ok(out)
}

fn setting<T>(
    raw: Option<(String, &'static str, &'static str)>,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some((value, origin, name)) => parse(value.trim()).map_err(|reason| ConfigError::Invalid {
            name,
            value,
            origin,
            reason,
        }),
    }
}

fn parse_listen_addr(v: &str) -> Result<SocketAddr, String> {
    let full = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    full.parse()
        .map_err(|_| "expected :PORT or HOST:PORT with a numeric host".into())
}

fn parse_log_level(v: &str) -> Result<String, String> {
    let l = v.to_lowercase();
    match l.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" | "off" => Ok(l),
        _ => Err("expected trace, debug, info, warn, error or off".into()),
    }
}

fn range(v: &str, min: usize, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

fn non_empty(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = Config::load(Cli::default(), env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen_addr.port(), 8080);
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "LOG_LEVEL: debug\nretention_days: 7\nmax_batch_size: 5\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(file),
            log_level: Some("warn".into()),
            ..Cli::default()
        };
        let c = Config::load(cli, env(&[("LOG_LEVEL", "error"), ("RETENTION_DAYS", "9")])).unwrap();
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.retention_days, 9);
        assert_eq!(c.max_batch_size, 5);
    }

    #[test]
    fn bad_value_names_setting_value_and_origin() {
        let err = Config::load(Cli::default(), env(&[("RETENTION_DAYS", "ten")])).unwrap_err();
        let line = err.to_string();
        assert!(
            line.contains("RETENTION_DAYS") && line.contains("ten") && line.contains("environment"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn listen_addr_accepts_port_only_form() {
        let c = Config::load(Cli::default(), env(&[("LISTEN_ADDR", ":9090")])).unwrap();
        assert_eq!(c.listen_addr, "0.0.0.0:9090".parse().unwrap());
        assert!(Config::load(Cli::default(), env(&[("LISTEN_ADDR", "nope")])).is_err());
    }

    #[test]
    fn database_url_selects_postgres_when_no_connection_string() {
        let c = Config::load(Cli::default(), env(&[("DATABASE_URL", "postgres://x/y")])).unwrap();
        assert_eq!(c.postgres.as_deref(), Some("postgres://x/y"));
        let c = Config::load(
            Cli::default(),
            env(&[
                ("DATABASE_URL", "postgres://x/y"),
                ("POSTGRES_CONNECTION_STRING", "postgres://a/b"),
            ]),
        )
        .unwrap();
        assert_eq!(c.postgres.as_deref(), Some("postgres://a/b"));
    }

    #[test]
    fn unknown_key_in_config_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "RETENTON_DAYS: 3\n").unwrap();
        let cli = Cli {
            config: Some(file),
            ..Cli::default()
        };
        let err = Config::load(cli, env(&[])).unwrap_err();
        assert!(err.to_string().contains("RETENTON_DAYS"));
    }

    #[test]
    fn sqlite_durability_defaults_to_full_and_accepts_normal() {
        assert_eq!(
            Config::load(Cli::default(), env(&[]))
                .unwrap()
                .sqlite_durability,
            Durability::Host
        );
        let c = Config::load(Cli::default(), env(&[("SQLITE_SYNCHRONOUS", "NORMAL")])).unwrap();
        assert_eq!(c.sqlite_durability, Durability::Process);
        assert!(Config::load(Cli::default(), env(&[("SQLITE_SYNCHRONOUS", "off")])).is_err());
    }

    #[test]
    fn batch_size_out_of_range_is_refused() {
        assert!(Config::load(Cli::default(), env(&[("MAX_BATCH_SIZE", "0")])).is_err());
    }
}

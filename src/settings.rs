//! Configuration loading: built-in defaults → config file → `EGX__SECTION__KEY`
//! environment → the original scripts' environment variables (and `AWS_CA_BUNDLE`) →
//! command-line flags.
//! Unknown keys and invalid values stop the program with the key and its origin named.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use egx_actors::admin::AdminConfig;
use egx_actors::calendar::MarketHoursConfig;
use egx_actors::fetcher::FetchConfig;
use egx_actors::kafka::{KafkaConfig, KafkaMode};
use egx_actors::key::KeyTemplate;
use egx_actors::sink::SinkConfig;
use egx_actors::source::{CsvConfig, SourceSpec, TradingViewConfig};
use egx_actors::supervisor::{ChaosConfig, SupervisorConfig};
use egx_actors::writer::WriterConfig;
use serde::{Deserialize, Serialize};

use crate::logging::{self, LogConfig};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Kafka cluster, topics, group.
    pub kafka: KafkaConfig,
    /// Object store.
    pub sink: SinkConfig,
    /// Kafka→store limits.
    pub writer: WriterConfig,
    /// What to fetch.
    pub fetch: FetchConfig,
    /// Restart policy.
    pub supervisor: SupervisorConfig,
    /// Fault injection for tests.
    pub chaos: ChaosConfig,
    /// Metrics and health endpoint.
    pub admin: AdminConfig,
    /// The TradingView feed (`fetch.source = "tradingview"`).
    pub tradingview: TradingViewConfig,
    /// Exported OHLCV files (`fetch.source = "csv"`).
    pub csv: CsvConfig,
    /// Trading sessions, for `fetch.market_hours = true`.
    pub market_hours: MarketHoursConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Which built-in defaults apply before the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// The embedded demo: in-process Kafka, local directory, synthetic source.
    Embedded,
    /// The original scripts': Kafka on localhost:9092, MinIO on localhost:9000.
    OriginalScripts,
}

/// Secret settings and their `EGX__` variables, read verbatim (never parsed as numbers).
const EGX_SECRETS: [(&str, &str); 3] = [
    ("EGX__KAFKA__SASL_PASSWORD", "kafka.sasl_password"),
    ("EGX__SINK__SECRET_ACCESS_KEY", "sink.secret_access_key"),
    ("EGX__TRADINGVIEW__AUTH_TOKEN", "tradingview.auth_token"),
];

/// Environment variables of the original scripts, applied after `EGX__` variables; with
/// them `AWS_CA_BUNDLE`, which users know from the AWS CLI and the other SDKs.
const ORIGINAL_ENV: [(&str, &str); 6] = [
    ("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers"),
    ("AWS_ACCESS_KEY_ID", "sink.access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "sink.secret_access_key"),
    ("AWS_REGION", "sink.region"),
    ("MINIO_ENDPOINT", "sink.endpoint"),
    ("AWS_CA_BUNDLE", "sink.ca_bundle"),
];

impl Settings {
    /// Loads the layers up to the environment (flags are applied by the caller).
    pub fn load(
        file: Option<&Path>,
        defaults: Defaults,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let origin = file.map_or_else(|| "built-in defaults".to_string(), |p| p.display().to_string());
        if let Some(path) = file {
            // Check the file alone first, so an error names the file and the key.
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let de = toml::Deserializer::new(&text);
            serde_path_to_error::deserialize::<_, Settings>(de).map_err(|e| {
                anyhow!("config file {}: key `{}`: {}", path.display(), e.path(), e.inner().message())
            })?;
        }
        let mut builder = config::Config::builder();
        if defaults == Defaults::OriginalScripts {
            // Real users of the original scripts want real prices: TradingView by default.
            builder = builder
                .set_default("kafka.mode", "external")?
                .set_default("sink.kind", "s3")?
                .set_default("fetch.source", "tradingview")?;
        }
        if let Some(path) = file {
            builder =
                builder.add_source(config::File::from(PathBuf::from(path)).format(config::FileFormat::Toml));
        }
        let mut builder = builder.add_source(
            config::Environment::with_prefix("EGX")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("fetch.symbols")
                .try_parsing(true),
        );
        // Number parsing above would turn a secret such as "007" into 7: secrets are
        // taken again verbatim.
        builder = override_from(builder, env, &EGX_SECRETS)?;
        builder = override_from(builder, env, &ORIGINAL_ENV)?;
        let merged = builder
            .build()
            .with_context(|| format!("cannot load configuration from {origin} and the environment"))?;
        let settings: Settings = serde_path_to_error::deserialize(merged).map_err(|e| {
            anyhow!("configuration ({origin} + EGX__ environment): key `{}`: {}", e.path(), e.inner())
        })?;
        Ok(settings)
    }

    /// Validates every section; the error names the key and where the value came from.
    pub fn validate(&self, origin: &str) -> Result<KeyTemplate> {
        let wrap = |e: egx_actors::config::ConfigError| anyhow!("invalid configuration ({origin}): {e}");
        self.kafka.validate().map_err(wrap)?;
        self.writer.validate().map_err(wrap)?;
        self.fetch.validate().map_err(wrap)?;
        self.supervisor.validate().map_err(wrap)?;
        self.chaos.validate().map_err(wrap)?;
        self.admin.validate().map_err(wrap)?;
        self.tradingview.validate().map_err(wrap)?;
        self.market_hours.validate().map_err(wrap)?;
        if self.csv.speed.is_nan() || self.csv.speed < 0.0 {
            return Err(anyhow!("invalid configuration ({origin}): csv.speed: must be 0 or more"));
        }
        logging::parse_level(&self.log.level)
            .map_err(|e| anyhow!("invalid configuration ({origin}): log.level: {e}"))?;
        self.sink.validate().map_err(wrap)
    }

    /// The configuration as TOML with secrets redacted.
    pub fn to_redacted_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// True when Kafka runs in-process.
    pub fn embedded_kafka(&self) -> bool {
        self.kafka.mode == KafkaMode::Embedded
    }

    /// What the data source is built from: `fetch.source`, the seed and the sources' sections.
    pub fn source_spec(&self) -> SourceSpec {
        SourceSpec {
            kind: self.fetch.source,
            seed: self.fetch.seed,
            tradingview: self.tradingview.clone(),
            csv: self.csv.clone(),
        }
    }
}

/// Sets each `key` to its variable's value, verbatim, when the variable is set and not empty.
fn override_from(
    mut builder: config::ConfigBuilder<config::builder::DefaultState>,
    env: &dyn Fn(&str) -> Option<String>,
    pairs: &[(&str, &str)],
) -> Result<config::ConfigBuilder<config::builder::DefaultState>> {
    for (var, key) in pairs {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            builder = builder.set_override(key, value)?;
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use egx_actors::sink::SinkKind;
    use std::collections::HashMap;
    use std::io::Write;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_the_embedded_demo() {
        let s = Settings::load(None, Defaults::Embedded, &no_env).unwrap();
        assert!(s.embedded_kafka());
        assert_eq!(s.sink.kind, SinkKind::Local);
        let s = Settings::load(None, Defaults::OriginalScripts, &no_env).unwrap();
        assert!(!s.embedded_kafka());
        assert_eq!(s.sink.kind, SinkKind::S3);
        assert_eq!(s.kafka.bootstrap_servers, "localhost:9092");
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let f = file("[kafka]\nbootstrap_server = \"x:1\"\n");
        let err = Settings::load(Some(f.path()), Defaults::Embedded, &no_env).unwrap_err().to_string();
        assert!(err.contains("bootstrap_server"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        let f = file("[kafak]\n");
        let err = Settings::load(Some(f.path()), Defaults::Embedded, &no_env).unwrap_err().to_string();
        assert!(err.contains("kafak"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let f = file("[fetch]\ninterval = \"Hourly\"\n");
        let err = Settings::load(Some(f.path()), Defaults::Embedded, &no_env).unwrap_err().to_string();
        assert!(err.contains("fetch.interval") && err.contains("Hourly"), "{err}");
        let f = file("[kafka]\npartitions = 0\n");
        let s = Settings::load(Some(f.path()), Defaults::Embedded, &no_env).unwrap();
        let err = s.validate("x.toml").unwrap_err().to_string();
        assert!(err.contains("kafka.partitions") && err.contains("x.toml"), "{err}");
    }

    #[test]
    fn secrets_from_the_environment_are_taken_verbatim() {
        let env = |k: &str| (k == "EGX__KAFKA__SASL_PASSWORD").then(|| "007".to_string());
        let s = Settings::load(None, Defaults::Embedded, &env).unwrap();
        assert_eq!(s.kafka.sasl_password.expose(), "007");
    }

    #[test]
    fn original_env_overrides_the_file_and_secrets_stay_hidden() {
        let f = file("[kafka]\nmode = \"external\"\nbootstrap_servers = \"file:1\"\n[sink]\nkind = \"s3\"\n");
        let env: HashMap<&str, &str> = [
            ("KAFKA_BOOTSTRAP_SERVERS", "env:2"),
            ("AWS_SECRET_ACCESS_KEY", "sentinel-secret-42"),
            ("MINIO_ENDPOINT", "http://m:9000"),
        ]
        .into();
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        let s = Settings::load(Some(f.path()), Defaults::Embedded, &lookup).unwrap();
        assert_eq!(s.kafka.bootstrap_servers, "env:2");
        assert_eq!(s.sink.endpoint, "http://m:9000");
        assert_eq!(s.sink.secret_access_key.expose(), "sentinel-secret-42");
        assert!(!s.to_redacted_toml().unwrap().contains("sentinel-secret-42"));
        assert!(!format!("{s:?}").contains("sentinel-secret-42"));
    }

    #[test]
    fn aws_ca_bundle_overrides_the_file_and_a_bad_bundle_names_the_key() {
        // EGX__SINK__CA_BUNDLE in between is read from the process environment by the
        // config crate: tests/secure_store.rs checks it through the binary.
        let f = file("[sink]\nkind = \"s3\"\nca_bundle = \"/file/ca.pem\"\n");
        let s = Settings::load(Some(f.path()), Defaults::Embedded, &no_env).unwrap();
        assert_eq!(s.sink.ca_bundle, PathBuf::from("/file/ca.pem"));
        let err = s.validate("x.toml").unwrap_err().to_string();
        assert!(err.contains("sink.ca_bundle") && err.contains("cannot read /file/ca.pem"), "{err}");
        let env = |k: &str| (k == "AWS_CA_BUNDLE").then(|| "/aws/ca.pem".to_string());
        let s = Settings::load(Some(f.path()), Defaults::Embedded, &env).unwrap();
        assert_eq!(s.sink.ca_bundle, PathBuf::from("/aws/ca.pem"));
    }
}

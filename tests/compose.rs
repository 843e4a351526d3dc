//! The local-development wiring agrees with itself: `docker-compose.dev.yml`, the files in
//! `config/` and the binary's `check-config`. Needs no Docker and no services: the compose
//! file is parsed, never started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::Value;

const SENTINEL: &str = "sentinel-XYZ";
/// The original scripts' variables, which would override the files under test.
const ORIGINAL_ENV: [&str; 5] =
    ["KAFKA_BOOTSTRAP_SERVERS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "MINIO_ENDPOINT"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.dev.yml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("docker-compose.dev.yml is valid YAML")
}

fn dev_toml() -> toml::Value {
    let text = std::fs::read_to_string(root().join("config/dev.toml")).unwrap();
    toml::from_str(&text).expect("config/dev.toml is valid TOML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let svc = compose["services"].get(name);
    svc.unwrap_or_else(|| panic!("service `{name}` missing from docker-compose.dev.yml"))
}

/// A scalar (string, number, bool) as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An `environment:` entry, in map form or in `KEY=value` list form.
fn env_var(svc: &Value, key: &str) -> String {
    let found = match &svc["environment"] {
        Value::Mapping(m) => m.get(key).and_then(scalar),
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).find_map(|item| {
            let (k, v) = item.split_once('=')?;
            (k == key).then(|| v.to_string())
        }),
        _ => None,
    };
    found.unwrap_or_else(|| panic!("environment variable {key} not set"))
}

/// The host port that publishes `container_port` (short or long port syntax).
fn host_port(svc: &Value, container_port: u16) -> u16 {
    let num = |v: &Value| scalar(v).and_then(|s| s.parse().ok());
    let ports = svc["ports"].as_sequence().expect("published ports");
    let found = ports.iter().find_map(|p| {
        let (host, target): (u16, u16) = match p.as_str() {
            // Short syntax: [IP:]HOST:CONTAINER[/PROTOCOL].
            Some(s) => {
                let mut parts = s.split('/').next()?.rsplit(':');
                let target = parts.next()?.parse().ok()?;
                (parts.next()?.parse().ok()?, target)
            }
            None => (num(&p["published"])?, num(&p["target"])?),
        };
        (target == container_port).then_some(host)
    });
    found.unwrap_or_else(|| panic!("container port {container_port} is not published"))
}

/// `entrypoint` and `command` joined into one shell text (string or list form each).
fn script(svc: &Value) -> String {
    let mut words = Vec::new();
    for key in ["entrypoint", "command"] {
        match &svc[key] {
            Value::Sequence(items) => words.extend(items.iter().filter_map(scalar)),
            other => words.extend(scalar(other)),
        }
    }
    words.join(" ")
}

/// The value after `name` in a tokenized command line.
fn flag(tokens: &[&str], name: &str) -> Option<String> {
    let i = tokens.iter().position(|t| *t == name)?;
    tokens.get(i + 1).map(|t| t.to_string())
}

/// Runs `egx-pipeline [--config FILE] check-config` with the sentinel secrets set and the
/// caller's pipeline-related environment removed.
fn check_config(file: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_egx-pipeline"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("EGX__") || ORIGINAL_ENV.contains(&name.as_ref()) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("AWS_SECRET_ACCESS_KEY", SENTINEL).env("EGX__KAFKA__SASL_PASSWORD", SENTINEL).current_dir(root());
    if let Some(file) = file {
        cmd.arg("--config").arg(file);
    }
    cmd.arg("check-config").output().expect("run egx-pipeline")
}

/// The compose file defines Kafka and MinIO with healthchecks, and init jobs waiting on them.
#[test]
fn compose_declares_the_services_and_their_init_jobs() {
    let c = compose();
    for (init, target) in [("kafka-init", "kafka"), ("minio-init", "minio")] {
        let test = &service(&c, target)["healthcheck"]["test"];
        assert!(test.is_sequence(), "{target}: no healthcheck");
        let cond = service(&c, init)["depends_on"][target]["condition"].as_str();
        assert_eq!(cond, Some("service_healthy"), "{init} waits");
    }
}

/// Kafka is one KRaft broker+controller, published and advertised on localhost:9092.
#[test]
fn kafka_is_published_and_advertised_on_localhost_9092() {
    let c = compose();
    let kafka = service(&c, "kafka");
    let roles = env_var(kafka, "KAFKA_PROCESS_ROLES");
    for role in ["broker", "controller"] {
        assert!(roles.contains(role), "{roles}");
    }
    assert_eq!(host_port(kafka, 9092), 9092);
    let advertised = env_var(kafka, "KAFKA_ADVERTISED_LISTENERS");
    let on_localhost = advertised.split(',').any(|l| l == "PLAINTEXT://localhost:9092");
    assert!(on_localhost, "{advertised}");
    let map = env_var(kafka, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP");
    assert!(map.split(',').any(|m| m == "PLAINTEXT:PLAINTEXT"), "{map}");
    for topic in ["OFFSETS_TOPIC", "TRANSACTION_STATE_LOG"] {
        let key = format!("KAFKA_{topic}_REPLICATION_FACTOR");
        assert_eq!(env_var(kafka, &key), "1", "{key}");
    }
}

/// MinIO publishes its API on 9000 and console on 9001, with the minioadmin dev login.
#[test]
fn minio_publishes_api_and_console_with_dev_credentials() {
    let c = compose();
    let minio = service(&c, "minio");
    assert_eq!(host_port(minio, 9000), 9000);
    assert_eq!(host_port(minio, 9001), 9001);
    let cmd = script(minio);
    assert!(cmd.contains("--console-address :9001"), "{cmd}");
    assert_eq!(env_var(minio, "MINIO_ROOT_USER"), "minioadmin");
    assert_eq!(env_var(minio, "MINIO_ROOT_PASSWORD"), "minioadmin");
    let init = script(service(&c, "minio-init"));
    let make_bucket = "mc mb --ignore-existing local/egx-data-bucket";
    assert!(init.contains(make_bucket), "{init}");
}

/// kafka-init creates the data and dead-letter topics exactly as config/dev.toml sizes them.
#[test]
fn kafka_init_creates_the_topics_dev_toml_expects() {
    let (c, dev) = (compose(), dev_toml());
    let kafka = &dev["kafka"];
    let retention_ms = kafka["retention_hours"].as_integer().unwrap() * 3_600_000;
    assert_eq!(retention_ms, 604_800_000, "7 days");
    let init = script(service(&c, "kafka-init"));
    let creates: Vec<Vec<&str>> = init
        .lines()
        .filter(|l| l.contains("kafka-topics.sh") && l.contains("--create"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    for key in ["topic", "dead_letter_topic"] {
        let name = kafka[key].as_str().unwrap();
        let tokens = creates
            .iter()
            .find(|t| flag(t, "--topic").as_deref() == Some(name))
            .unwrap_or_else(|| panic!("kafka-init does not create {name}:\n{init}"));
        assert!(tokens.contains(&"--if-not-exists"), "{name}");
        let partitions = kafka["partitions"].as_integer().unwrap().to_string();
        assert_eq!(flag(tokens, "--partitions"), Some(partitions), "{name}");
        assert_eq!(flag(tokens, "--replication-factor").as_deref(), Some("1"));
        let retention = format!("retention.ms={retention_ms}");
        assert_eq!(flag(tokens, "--config"), Some(retention), "{name}");
    }
}

/// config/dev.toml points at the compose file's Kafka listener, MinIO API and bucket.
#[test]
fn dev_toml_targets_the_compose_services() {
    let (c, dev) = (compose(), dev_toml());
    let kafka_port = host_port(service(&c, "kafka"), 9092);
    let advertised = env_var(service(&c, "kafka"), "KAFKA_ADVERTISED_LISTENERS");
    let listener = format!("//localhost:{kafka_port}");
    assert!(advertised.contains(&listener), "{advertised}");
    assert_eq!(dev["kafka"]["mode"].as_str(), Some("external"));
    let bootstrap = dev["kafka"]["bootstrap_servers"].as_str();
    assert_eq!(bootstrap, Some(format!("localhost:{kafka_port}").as_str()));

    let minio_port = host_port(service(&c, "minio"), 9000);
    let sink = &dev["sink"];
    assert_eq!(sink["kind"].as_str(), Some("s3"));
    let endpoint = format!("http://localhost:{minio_port}");
    assert_eq!(sink["endpoint"].as_str(), Some(endpoint.as_str()));
    assert_eq!(sink["force_path_style"].as_bool(), Some(true), "MinIO");
    let bucket = sink["bucket"].as_str().unwrap();
    let init = script(service(&c, "minio-init"));
    let make_bucket = format!(" local/{bucket}\n");
    assert!(init.contains(&make_bucket), "{init}");
}

/// Every config/*.toml passes `check-config`; no file holds a secret and none is printed.
#[test]
fn every_config_file_passes_check_config_without_leaking_secrets() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config"))
        .expect("config/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let parsed: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let get = |section: &str, key: &str| parsed.get(section).and_then(|s| s.get(key));
        for (section, key) in [("kafka", "sasl_password"), ("sink", "secret_access_key")] {
            assert!(get(section, key).is_none(), "{file:?}: {key}");
        }
        let key_id = get("sink", "access_key_id").and_then(|v| v.as_str());
        assert!(key_id.unwrap_or("").is_empty(), "{file:?}: access_key_id");

        let out = check_config(Some(file));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file:?} rejected:\n{stderr}");
        let leaked = stdout.contains(SENTINEL) || stderr.contains(SENTINEL);
        assert!(!leaked, "{file:?}: check-config printed a secret");
        assert!(stdout.contains("<redacted>"), "{file:?}: {stdout}");
    }
}

/// config/default.toml is exactly the built-in default (the embedded demo) written out.
#[test]
fn default_toml_is_the_built_in_default() {
    let with_file = check_config(Some(&root().join("config/default.toml")));
    let without = check_config(None);
    assert!(with_file.status.success() && without.status.success());
    assert_eq!(String::from_utf8_lossy(&with_file.stdout), String::from_utf8_lossy(&without.stdout));
}

//! The local-development wiring agrees with itself: `docker-compose.dev.yml`, the files in
//! `config/` and the binary's `check-config`. Needs no Docker and no services: the compose
//! file is parsed, never started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml_ng::Value;

const SENTINEL: &str = "sentinel-XYZ";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let path = root().join("docker-compose.dev.yml");
    let text = std::fs::read_to_string(&path).expect("read docker-compose.dev.yml");
    serde_yaml_ng::from_str(&text).expect("docker-compose.dev.yml is valid YAML")
}

fn dev_toml() -> toml::Value {
    let text = std::fs::read_to_string(root().join("config/dev.toml")).expect("read dev.toml");
    toml::from_str(&text).expect("config/dev.toml is valid TOML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("service `{name}` missing from docker-compose.dev.yml"))
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
fn env_var(svc: &Value, key: &str) -> Option<String> {
    match &svc["environment"] {
        Value::Mapping(m) => m.get(key).and_then(scalar),
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).find_map(|item| {
            let (k, v) = item.split_once('=')?;
            (k == key).then(|| v.to_string())
        }),
        _ => None,
    }
}

/// `(host port, container port)` of every published port, short or long syntax.
fn published_ports(svc: &Value) -> Vec<(u16, u16)> {
    let Some(ports) = svc["ports"].as_sequence() else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| match p {
            Value::Mapping(_) => {
                let n = |k: &str| scalar(&p[k]).and_then(|s| s.parse().ok()).expect("port");
                (n("published"), n("target"))
            }
            _ => {
                let s = scalar(p).expect("port entry");
                let mut parts = s.rsplit(':');
                let target = parts.next().unwrap().split('/').next().unwrap();
                let host = parts.next().expect("a published host port");
                (host.parse().unwrap(), target.parse().unwrap())
            }
        })
        .collect()
}

/// The host port that publishes `container_port`.
fn host_port(svc: &Value, container_port: u16) -> u16 {
    published_ports(svc)
        .into_iter()
        .find_map(|(host, target)| (target == container_port).then_some(host))
        .unwrap_or_else(|| panic!("container port {container_port} is not published"))
}

/// `entrypoint` and `command` joined into one shell text (string or list form each).
fn script(svc: &Value) -> String {
    let part = |v: &Value| match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(scalar)
            .collect::<Vec<_>>()
            .join(" "),
        other => scalar(other).unwrap_or_default(),
    };
    format!("{} {}", part(&svc["entrypoint"]), part(&svc["command"]))
}

/// Topics the `kafka-init` script creates: `(name, flags after --create)`, one per line.
fn created_topics(compose: &Value) -> Vec<(String, Vec<String>)> {
    script(service(compose, "kafka-init"))
        .lines()
        .filter(|l| l.contains("kafka-topics.sh") && l.contains("--create"))
        .map(|line| {
            let tokens: Vec<String> = line.split_whitespace().map(String::from).collect();
            let topic = flag(&tokens, "--topic").expect("--topic");
            (topic, tokens)
        })
        .collect()
}

fn flag(tokens: &[String], name: &str) -> Option<String> {
    let i = tokens.iter().position(|t| t == name)?;
    tokens.get(i + 1).cloned()
}

/// Runs `egx-pipeline [--config FILE] check-config` with the sentinel secrets set and the
/// caller's pipeline-related environment removed.
fn check_config(file: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_egx-pipeline"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("EGX__") {
            cmd.env_remove(key);
        }
    }
    for key in [
        "KAFKA_BOOTSTRAP_SERVERS",
        "AWS_ACCESS_KEY_ID",
        "AWS_REGION",
        "MINIO_ENDPOINT",
    ] {
        cmd.env_remove(key);
    }
    cmd.env("AWS_SECRET_ACCESS_KEY", SENTINEL)
        .env("EGX__KAFKA__SASL_PASSWORD", SENTINEL)
        .current_dir(root());
    if let Some(file) = file {
        cmd.arg("--config").arg(file);
    }
    cmd.arg("check-config").output().expect("run egx-pipeline")
}

/// The compose file defines Kafka, MinIO and the one-shot services that wait for them.
#[test]
fn compose_declares_the_services_and_their_init_jobs() {
    let c = compose();
    for (init, target) in [("kafka-init", "kafka"), ("minio-init", "minio")] {
        assert!(
            service(&c, target)["healthcheck"]["test"].is_sequence(),
            "{target}: healthcheck"
        );
        let cond = &service(&c, init)["depends_on"][target]["condition"];
        assert_eq!(
            cond.as_str(),
            Some("service_healthy"),
            "{init} waits for {target}"
        );
    }
}

/// Kafka is one KRaft broker+controller, published and advertised on localhost:9092.
#[test]
fn kafka_is_published_and_advertised_on_localhost_9092() {
    let c = compose();
    let kafka = service(&c, "kafka");
    let roles = env_var(kafka, "KAFKA_PROCESS_ROLES").expect("KAFKA_PROCESS_ROLES");
    assert!(
        roles.contains("broker") && roles.contains("controller"),
        "{roles}"
    );
    assert_eq!(host_port(kafka, 9092), 9092);
    let advertised = env_var(kafka, "KAFKA_ADVERTISED_LISTENERS").expect("advertised");
    assert!(
        advertised
            .split(',')
            .any(|l| l == "PLAINTEXT://localhost:9092"),
        "{advertised}"
    );
    let map = env_var(kafka, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").expect("protocol map");
    assert!(map.split(',').any(|m| m == "PLAINTEXT:PLAINTEXT"), "{map}");
    for key in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ] {
        assert_eq!(env_var(kafka, key).as_deref(), Some("1"), "{key}");
    }
}

/// MinIO publishes its API on 9000 and console on 9001, with the minioadmin dev login.
#[test]
fn minio_publishes_api_and_console_with_dev_credentials() {
    let c = compose();
    let minio = service(&c, "minio");
    assert_eq!(host_port(minio, 9000), 9000);
    assert_eq!(host_port(minio, 9001), 9001);
    assert!(
        script(minio).contains("--console-address :9001"),
        "{}",
        script(minio)
    );
    assert_eq!(
        env_var(minio, "MINIO_ROOT_USER").as_deref(),
        Some("minioadmin")
    );
    assert_eq!(
        env_var(minio, "MINIO_ROOT_PASSWORD").as_deref(),
        Some("minioadmin")
    );
    let init = script(service(&c, "minio-init"));
    assert!(
        init.contains("mc mb --ignore-existing local/egx-data-bucket"),
        "{init}"
    );
}

/// kafka-init creates the data and dead-letter topics exactly as config/dev.toml sizes them.
#[test]
fn kafka_init_creates_the_topics_dev_toml_expects() {
    let (c, dev) = (compose(), dev_toml());
    let kafka = &dev["kafka"];
    let topics = created_topics(&c);
    let retention_ms = kafka["retention_hours"].as_integer().unwrap() * 3_600_000;
    assert_eq!(retention_ms, 604_800_000, "7 days");
    for key in ["topic", "dead_letter_topic"] {
        let name = kafka[key].as_str().unwrap();
        let (_, tokens) = topics
            .iter()
            .find(|(t, _)| t == name)
            .unwrap_or_else(|| panic!("kafka-init does not create {name}: {topics:?}"));
        assert!(
            tokens.iter().any(|t| t == "--if-not-exists"),
            "{name}: --if-not-exists"
        );
        let partitions = flag(tokens, "--partitions").expect("--partitions");
        assert_eq!(
            partitions,
            kafka["partitions"].as_integer().unwrap().to_string(),
            "{name}"
        );
        assert_eq!(
            flag(tokens, "--replication-factor").as_deref(),
            Some("1"),
            "{name}"
        );
        let config = flag(tokens, "--config").expect("--config");
        assert_eq!(config, format!("retention.ms={retention_ms}"), "{name}");
    }
}

/// config/dev.toml points at the compose file's Kafka listener, MinIO API and bucket.
#[test]
fn dev_toml_targets_the_compose_services() {
    let (c, dev) = (compose(), dev_toml());
    let kafka_port = host_port(service(&c, "kafka"), 9092);
    let advertised = env_var(service(&c, "kafka"), "KAFKA_ADVERTISED_LISTENERS").unwrap();
    assert!(
        advertised.contains(&format!("//localhost:{kafka_port}")),
        "{advertised}"
    );
    assert_eq!(dev["kafka"]["mode"].as_str(), Some("external"));
    let bootstrap = dev["kafka"]["bootstrap_servers"].as_str().unwrap();
    assert_eq!(bootstrap, format!("localhost:{kafka_port}"));

    let minio_port = host_port(service(&c, "minio"), 9000);
    let sink = &dev["sink"];
    assert_eq!(sink["kind"].as_str(), Some("s3"));
    assert_eq!(
        sink["endpoint"].as_str().unwrap(),
        format!("http://localhost:{minio_port}")
    );
    assert_eq!(
        sink["force_path_style"].as_bool(),
        Some(true),
        "MinIO needs path style"
    );
    let bucket = sink["bucket"].as_str().unwrap();
    let init = script(service(&c, "minio-init"));
    assert!(
        init.contains(&format!("local/{bucket}")),
        "minio-init creates {bucket}: {init}"
    );
}

/// Every config/*.toml passes `check-config`, and no secret is written in any of them
/// or printed by it.
#[test]
fn every_config_file_passes_check_config_without_leaking_secrets() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config"))
        .expect("config/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "default, dev and production example: {files:?}"
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let kafka = parsed.get("kafka");
        assert!(
            kafka.and_then(|k| k.get("sasl_password")).is_none(),
            "{file:?}: password"
        );
        let sink = parsed.get("sink");
        assert!(
            sink.and_then(|s| s.get("secret_access_key")).is_none(),
            "{file:?}: secret"
        );
        let key_id = sink
            .and_then(|s| s.get("access_key_id"))
            .and_then(|v| v.as_str());
        assert!(
            key_id.unwrap_or("").is_empty(),
            "{file:?}: access_key_id in a file"
        );

        let out = check_config(Some(file));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file:?} rejected:\n{stderr}");
        assert!(
            !stdout.contains(SENTINEL) && !stderr.contains(SENTINEL),
            "{file:?} leaks"
        );
        assert!(
            stdout.contains("<redacted>"),
            "{file:?}: secrets shown redacted"
        );
    }
}

/// config/default.toml is exactly the built-in default (the embedded demo) written out.
#[test]
fn default_toml_is_the_built_in_default() {
    let with_file = check_config(Some(&root().join("config/default.toml")));
    let without = check_config(None);
    assert!(with_file.status.success() && without.status.success());
    assert_eq!(
        String::from_utf8_lossy(&with_file.stdout),
        String::from_utf8_lossy(&without.stdout)
    );
}

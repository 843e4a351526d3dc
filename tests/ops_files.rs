//! The operations files agree with the binary and with each other: the Grafana dashboard
//! and the Prometheus alert rules use only metrics the binary exports, Prometheus loads
//! the rules and scrapes the admin port, the compose file mounts and publishes them, and
//! the Dockerfile builds a locked, non-root image. Needs no Docker and no services: every
//! file is parsed, never started.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use egx_actors::metrics::{Metrics, METRIC_NAMES};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

const DASHBOARD: &str = "ops/grafana/egx-pipeline.json";
const ALERTS: &str = "ops/prometheus/alerts.yml";
const PROMETHEUS: &str = "ops/prometheus/prometheus.yml";
const DATASOURCES: &str = "ops/grafana/provisioning/datasources/prometheus.yml";
const DASHBOARD_PROVIDERS: &str = "ops/grafana/provisioning/dashboards/egx.yml";
/// The original scripts' variables, which the binary applies over the config file.
const ORIGINAL_ENV: [&str; 5] =
    ["KAFKA_BOOTSTRAP_SERVERS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "MINIO_ENDPOINT"];
/// The admin endpoint's port (actors/src/admin.rs default `127.0.0.1:9898`).
const ADMIN_PORT: u16 = 9898;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"))
}

fn compose_service(name: &str) -> Yaml {
    let compose = yaml("docker-compose.dev.yml");
    let svc = compose["services"].get(name).cloned();
    svc.unwrap_or_else(|| panic!("service `{name}` missing from docker-compose.dev.yml"))
}

/// Every name a PromQL expression may use: the exported metrics, plus the `_bucket`,
/// `_sum` and `_count` series of those the binary exports as histograms.
fn known_series() -> BTreeSet<String> {
    let exposition = Metrics::new().unwrap().render();
    let mut known: BTreeSet<String> = METRIC_NAMES.iter().map(|n| n.to_string()).collect();
    for name in METRIC_NAMES {
        if exposition.contains(&format!("# TYPE {name} histogram\n")) {
            known.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
        }
    }
    assert!(known.contains("egx_object_write_duration_seconds_bucket"), "{known:?}");
    known
}

/// The identifiers in a PromQL expression that start with `egx_`.
fn egx_names(expr: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    for (i, _) in expr.match_indices("egx_") {
        if expr[..i].chars().next_back().is_some_and(ident) {
            continue;
        }
        let name: String = expr[i..].chars().take_while(|c| ident(*c)).collect();
        names.push(name);
    }
    names
}

/// Brackets and quotes of an expression pair up (a cheap guard against typos).
fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty() && quote.is_none()
}

/// Panics unless `expr` is balanced and every `egx_` name in it is exported.
fn check_expr(known: &BTreeSet<String>, context: &str, expr: &str) -> Vec<String> {
    assert!(balanced(expr), "{context}: unbalanced brackets or quotes in {expr:?}");
    let names = egx_names(expr);
    assert!(!names.is_empty(), "{context}: no egx_ metric in {expr:?}");
    for name in &names {
        assert!(known.contains(name), "{context}: unknown metric `{name}` in {expr:?}; known: {known:?}");
    }
    names
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dash: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Every PromQL text of the dashboard (panel targets and query variables), with a context.
fn dashboard_exprs(dash: &Json) -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{}: a target has no expr", p["title"]));
            exprs.push((format!("panel {}", p["title"]), expr.to_string()));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = &v["query"];
            let expr = q.as_str().or_else(|| q["query"].as_str()).unwrap_or_default();
            exprs.push((format!("variable {}", v["name"]), expr.to_string()));
        }
    }
    exprs
}

/// A Prometheus duration such as `10m` or `1h30m`.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"].into_iter().find(|u| rest.starts_with(u));
        let Some(unit) = unit else { return false };
        rest = &rest[unit.len()..];
    }
    !text.is_empty()
}

fn alert_rules() -> Vec<Yaml> {
    let alerts = yaml(ALERTS);
    let groups = alerts["groups"].as_sequence().expect("alerts.yml: `groups` list");
    assert!(!groups.is_empty());
    let mut rules = Vec::new();
    for g in groups {
        assert!(g["name"].as_str().is_some_and(|n| !n.is_empty()), "a group has no name");
        let list = g["rules"].as_sequence().unwrap_or_else(|| panic!("group {:?}: no rules", g["name"]));
        rules.extend(list.iter().cloned());
    }
    rules
}

/// A service's bind mounts as (host path, container path), short or long syntax.
fn mounts(svc: &Yaml) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in svc["volumes"].as_sequence().into_iter().flatten() {
        let pair = match v.as_str() {
            Some(s) => {
                let mut parts = s.split(':');
                parts.next().zip(parts.next()).map(|(a, b)| (a.to_string(), b.to_string()))
            }
            None => v["source"].as_str().zip(v["target"].as_str()).map(|(a, b)| (a.into(), b.into())),
        };
        out.extend(pair);
    }
    out
}

/// The container path a host path (relative to the repository) is mounted at.
fn mounted_at(svc: &Yaml, host: &str) -> String {
    let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_string();
    let found = mounts(svc).into_iter().find(|(src, _)| norm(src) == norm(host));
    found.unwrap_or_else(|| panic!("{host} is not mounted: {:?}", mounts(svc))).1
}

/// The host port that publishes `container_port` (short or long syntax).
fn published(svc: &Yaml, container_port: u16) -> Option<u16> {
    let num = |v: &Yaml| v.as_u64().map(|n| n.to_string()).or_else(|| v.as_str().map(str::to_string));
    svc["ports"].as_sequence()?.iter().find_map(|p| {
        let (host, target): (String, String) = match p.as_str() {
            Some(s) => {
                let mut parts = s.split('/').next()?.rsplit(':');
                let target = parts.next()?.to_string();
                (parts.next()?.to_string(), target)
            }
            None => (num(&p["published"])?, num(&p["target"])?),
        };
        (target.parse() == Ok(container_port)).then(|| host.parse().ok()).flatten()
    })
}

/// A service's list of words (`command`, `entrypoint`), string or list form.
fn words(svc: &Yaml, key: &str) -> Vec<String> {
    match &svc[key] {
        Yaml::Sequence(items) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// A service's environment as (key, value) pairs, map or `KEY=value` list form.
fn environment(svc: &Yaml) -> Vec<(String, String)> {
    match &svc["environment"] {
        Yaml::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| {
                let v = v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string()));
                Some((k.as_str()?.to_string(), v?))
            })
            .collect(),
        Yaml::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str()?.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect(),
        _ => Vec::new(),
    }
}

fn env_of(svc: &Yaml, key: &str) -> String {
    let found = environment(svc).into_iter().find(|(k, _)| k == key);
    found.unwrap_or_else(|| panic!("environment variable {key} not set")).1
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped), by stage.
fn docker_stages() -> Vec<Vec<String>> {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => current.push_str(&format!("{} ", head.trim())),
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<String>> = Vec::new();
    for i in instructions.into_iter().filter(|i| !i.is_empty()) {
        if i.to_uppercase().starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("the Dockerfile starts with FROM").push(i);
    }
    stages
}

/// The argument of the last `KEYWORD` instruction of a stage.
fn last_arg<'a>(stage: &'a [String], keyword: &str) -> Option<&'a str> {
    let prefix = format!("{keyword} ");
    stage.iter().rev().find_map(|i| i.strip_prefix(&prefix)).map(str::trim)
}

/// The dashboard is Grafana JSON with a uid, schemaVersion and titled panels on the
/// provisioned Prometheus datasource.
#[test]
fn dashboard_parses_and_every_panel_has_a_title() {
    let dash = dashboard();
    assert!(dash["uid"].as_str().is_some_and(|u| !u.is_empty()), "uid");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let all = panels(&dash);
    assert!(all.len() >= 12, "only {} panels", all.len());
    let mut ids = BTreeSet::new();
    for p in &all {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.trim().is_empty(), "a panel has no title: {p}");
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "duplicate id: {title}");
        for key in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "prometheus", "{title}: datasource");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        for t in targets.unwrap_or_else(|| panic!("{title}: no queries")) {
            assert_eq!(t["datasource"]["uid"], "prometheus", "{title}: target datasource");
        }
    }
}

/// Every PromQL expression on the dashboard uses only exported metric names, and every
/// exported metric is on the dashboard.
#[test]
fn dashboard_queries_use_only_exported_metrics() {
    let (dash, known) = (dashboard(), known_series());
    let mut used = BTreeSet::new();
    for (context, expr) in dashboard_exprs(&dash) {
        used.extend(check_expr(&known, &context, &expr));
    }
    for name in METRIC_NAMES {
        let shown =
            used.iter().any(|u| u == name || u.strip_prefix(name).is_some_and(|s| s.starts_with('_')));
        assert!(shown, "{name} is on no panel");
    }
}

/// The dashboard shows write latency quantiles from the histogram's buckets and each
/// symbol's time since its last successful fetch.
#[test]
fn dashboard_shows_write_latency_quantiles_and_fetch_staleness() {
    let exprs: Vec<String> = dashboard_exprs(&dashboard()).into_iter().map(|(_, e)| e).collect();
    for q in ["0.50", "0.95", "0.99"] {
        let quantile = format!("histogram_quantile({q}, ");
        let found = exprs
            .iter()
            .any(|e| e.contains(&quantile) && e.contains("egx_object_write_duration_seconds_bucket"));
        assert!(found, "no p{q} write latency: {exprs:#?}");
    }
    let stale =
        exprs.iter().any(|e| e.contains("time() - ") && e.contains("egx_fetch_last_success_timestamp"));
    assert!(stale, "no seconds-since-last-fetch panel");
}

/// Every alert rule has alert, expr, for, labels.severity and annotations.summary, and
/// its expression uses only exported metric names.
#[test]
fn alert_rules_are_complete_and_use_only_exported_metrics() {
    let known = known_series();
    let rules = alert_rules();
    let mut names = BTreeSet::new();
    for rule in &rules {
        let alert = rule["alert"].as_str().unwrap_or_else(|| panic!("a rule has no `alert`: {rule:?}"));
        assert!(names.insert(alert.to_string()), "duplicate alert {alert}");
        let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{alert}: no expr"));
        check_expr(&known, alert, expr);
        let wait = rule["for"].as_str().unwrap_or_else(|| panic!("{alert}: no `for`"));
        assert!(is_duration(wait), "{alert}: `for: {wait}` is not a duration");
        let severity = rule["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("warning" | "critical")), "{alert}: severity {severity:?}");
        for key in ["summary", "description"] {
            let text = rule["annotations"][key].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{alert}: annotations.{key}");
        }
    }
}

/// The rules cover lag, error rates, dead letters, stale symbols, restarts, dependencies
/// and partition assignment.
#[test]
fn alert_rules_cover_the_operational_risks() {
    let exprs: Vec<String> =
        alert_rules().iter().map(|r| r["expr"].as_str().unwrap_or_default().to_string()).collect();
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| egx_names(e)).collect();
    for metric in [
        "egx_consumer_lag_records",
        "egx_object_write_errors_total",
        "egx_produce_errors_total",
        "egx_records_dead_lettered_total",
        "egx_fetch_last_success_timestamp_seconds",
        "egx_actor_restarts_total",
        "egx_dependency_up",
        "egx_assigned_partitions",
    ] {
        assert!(used.contains(metric), "no alert on {metric}");
    }
    assert!(exprs.iter().any(|e| e.contains("time() - egx_fetch_last_success")), "stale symbols");
}

/// prometheus.yml loads alerts.yml (next to it) and scrapes the admin port 9898, on the host
/// and on the compose file's `pipeline` service.
#[test]
fn prometheus_config_loads_the_alerts_and_scrapes_port_9898() {
    let prom = yaml(PROMETHEUS);
    let rule_files: Vec<&str> =
        prom["rule_files"].as_sequence().expect("rule_files").iter().filter_map(Yaml::as_str).collect();
    assert!(rule_files.contains(&"alerts.yml"), "{rule_files:?}");
    let dir = Path::new(PROMETHEUS).parent().unwrap();
    assert!(root().join(dir).join("alerts.yml").is_file());

    let jobs = prom["scrape_configs"].as_sequence().expect("scrape_configs");
    let mut static_targets = Vec::new();
    let mut dns = Vec::new();
    for job in jobs {
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            static_targets.extend(sc["targets"].as_sequence().into_iter().flatten().filter_map(Yaml::as_str));
        }
        for sd in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
            let port = sd["port"].as_u64();
            dns.extend(
                sd["names"].as_sequence().into_iter().flatten().filter_map(Yaml::as_str).map(|n| (n, port)),
            );
        }
    }
    let on_host = format!("host.docker.internal:{ADMIN_PORT}");
    assert!(static_targets.contains(&on_host.as_str()), "{static_targets:?}");
    assert!(dns.contains(&("pipeline", Some(u64::from(ADMIN_PORT)))), "{dns:?}");
    compose_service("pipeline");
}

/// The compose file's prometheus and grafana services publish 9090 and 3000 and mount
/// the ops/ files where their configurations expect them.
#[test]
fn compose_runs_prometheus_and_grafana_with_the_ops_files() {
    let prometheus = compose_service("prometheus");
    assert_eq!(published(&prometheus, 9090), Some(9090));
    let config_dir = mounted_at(&prometheus, "ops/prometheus");
    let command = words(&prometheus, "command");
    let config_flag = format!("--config.file={config_dir}/prometheus.yml");
    assert!(command.contains(&config_flag), "{command:?}");
    let hosts: Vec<&str> = prometheus["extra_hosts"]
        .as_sequence()
        .expect("extra_hosts")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(hosts.contains(&"host.docker.internal:host-gateway"), "{hosts:?}");

    let grafana = compose_service("grafana");
    assert_eq!(published(&grafana, 3000), Some(3000));
    for kind in ["datasources", "dashboards"] {
        let at = mounted_at(&grafana, &format!("ops/grafana/provisioning/{kind}"));
        assert_eq!(at, format!("/etc/grafana/provisioning/{kind}"));
    }
    // The dashboard provider reads the folder where ops/grafana/ (the JSON) is mounted.
    let dashboards_at = mounted_at(&grafana, "ops/grafana");
    let providers = yaml(DASHBOARD_PROVIDERS);
    let paths: Vec<&str> = providers["providers"]
        .as_sequence()
        .expect("providers")
        .iter()
        .filter_map(|p| p["options"]["path"].as_str())
        .collect();
    assert!(paths.iter().any(|p| p.trim_end_matches('/') == dashboards_at), "{paths:?} vs {dashboards_at}");
    let file_name = Path::new(DASHBOARD).file_name().unwrap().to_string_lossy();
    assert!(root().join("ops/grafana").join(file_name.as_ref()).is_file());

    // The datasource is the compose Prometheus, under the uid the dashboard uses.
    let sources = yaml(DATASOURCES);
    let ds = sources["datasources"].as_sequence().expect("datasources");
    let prom = ds.iter().find(|d| d["type"] == "prometheus").expect("a prometheus datasource");
    assert_eq!(prom["uid"].as_str(), Some("prometheus"));
    assert_eq!(prom["url"].as_str(), Some("http://prometheus:9090"));
}

/// The optional `pipeline` service runs dev.toml against the compose Kafka and MinIO, and
/// with its environment `check-config` resolves to those addresses and 0.0.0.0:9898.
#[test]
fn compose_pipeline_service_targets_the_compose_services() {
    let svc = compose_service("pipeline");
    let profiles: Vec<&str> =
        svc["profiles"].as_sequence().expect("profiles").iter().filter_map(Yaml::as_str).collect();
    assert_eq!(profiles, ["pipeline"]);
    let dockerfile = svc["build"]["dockerfile"].as_str().unwrap_or("Dockerfile");
    assert!(root().join(svc["build"]["context"].as_str().unwrap_or(".")).join(dockerfile).is_file());
    let kafka = compose_service("kafka");
    let advertised = env_of(&kafka, "KAFKA_ADVERTISED_LISTENERS");
    let bootstrap = env_of(&svc, "KAFKA_BOOTSTRAP_SERVERS");
    assert!(advertised.split(',').any(|l| l == format!("INTERNAL://{bootstrap}")), "{advertised}");
    assert_eq!(env_of(&svc, "MINIO_ENDPOINT"), "http://minio:9000");
    assert_eq!(published(&compose_service("minio"), 9000), Some(9000));

    // The command, with the container's /etc/egx mapped back to config/ and `run`
    // replaced by `check-config`, under the service's environment.
    let command = words(&svc, "command");
    assert_eq!(command.last().map(String::as_str), Some("run"), "{command:?}");
    let etc = mounted_at(&svc, "config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_egx-pipeline"));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("EGX__") || ORIGINAL_ENV.contains(&name.as_ref()) {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(environment(&svc)).current_dir(root());
    for word in &command[..command.len() - 1] {
        cmd.arg(word.replace(&etc, &root().join("config").to_string_lossy()));
    }
    let out = cmd.arg("check-config").output().expect("run egx-pipeline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: toml::Value = toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}:\n{stdout}"));
    assert_eq!(config["admin"]["listen"].as_str(), Some("0.0.0.0:9898"), "{stdout}");
    assert_eq!(config["kafka"]["bootstrap_servers"].as_str(), Some(bootstrap.as_str()));
    assert_eq!(config["sink"]["endpoint"].as_str(), Some("http://minio:9000"));
    assert_eq!(config["sink"]["access_key_id"].as_str(), Some(env_of(&svc, "AWS_ACCESS_KEY_ID").as_str()));
    assert_eq!(config["sink"]["secret_access_key"].as_str(), Some("<redacted>"), "{stdout}");
}

/// The Dockerfile builds with --locked in a Rust stage and runs as a non-root user in a
/// slim runtime stage that holds config/ at /etc/egx; .dockerignore keeps out build output.
#[test]
fn dockerfile_builds_locked_and_runs_as_non_root() {
    let stages = docker_stages();
    assert!(stages.len() >= 2, "not multi-stage: {stages:?}");
    let builder = &stages[0];
    assert!(builder[0].starts_with("FROM rust:"), "{}", builder[0]);
    let build = builder.iter().find(|i| i.starts_with("RUN") && i.contains("cargo build"));
    let build = build.expect("the builder runs cargo build");
    for flag in ["--release", "--locked", "-p egx-pipeline"] {
        assert!(build.contains(flag), "{flag}: {build}");
    }

    let runtime = stages.last().unwrap();
    assert!(runtime[0].starts_with("FROM debian:bookworm-slim"), "{}", runtime[0]);
    let user = last_arg(runtime, "USER").expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(!matches!(name, "" | "root" | "0"), "runs as {user}");
    let entrypoint: Vec<String> =
        serde_json::from_str(last_arg(runtime, "ENTRYPOINT").expect("ENTRYPOINT")).unwrap();
    assert_eq!(entrypoint, ["egx-pipeline"]);
    let cmd: Vec<String> = serde_json::from_str(last_arg(runtime, "CMD").expect("CMD")).unwrap();
    assert_eq!(cmd, ["run", "--once"]);
    assert!(runtime.iter().any(|i| i == "COPY config/ /etc/egx/"), "{runtime:?}");

    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(|l| l.trim().trim_start_matches('/').trim_end_matches('/').to_string())
        .collect();
    for path in ["target", ".cache", ".git"] {
        assert!(ignored.iter().any(|l| l == path), ".dockerignore lacks {path}");
    }
}

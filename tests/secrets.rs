//! Security basics: a sentinel secret handed to the binary through the environment (S3
//! secret key, SASL password, TradingView token) never appears in what it prints, on
//! success or failure, at any log level. No services needed: the failures are against
//! endpoints where nothing listens.

use std::io::Write;
use std::process::{Command, Output};

use crate::support;

/// The secret every run is given.
const SENTINEL: &str = "sentinel-7f3a9c";
/// Its random part, which also catches a secret printed half-masked or re-encoded.
const SENTINEL_TAIL: &str = "7f3a9c";
/// Non-secret values given beside the secrets: seeing them proves the environment was read.
const CANARY_KEY_ID: &str = "canary-key-id";
const CANARY_USER: &str = "canary-sasl-user";

/// The binary with the sentinel in every secret's variable and the canaries beside it.
fn binary() -> Command {
    let mut cmd = support::binary();
    cmd.env("AWS_SECRET_ACCESS_KEY", SENTINEL)
        .env("EGX__KAFKA__SASL_PASSWORD", SENTINEL)
        .env("EGX__TRADINGVIEW__AUTH_TOKEN", SENTINEL)
        .env("AWS_ACCESS_KEY_ID", CANARY_KEY_ID)
        .env("EGX__KAFKA__SASL_USERNAME", CANARY_USER);
    cmd
}

/// Runs `cmd` and fails if the sentinel shows up on stdout or stderr.
fn run_without_leak(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().expect("binary runs");
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(SENTINEL) && !text.contains(SENTINEL_TAIL),
            "{what}: the secret leaked to {stream}:\n{text}"
        );
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config file with SASL on (so the password is handed to librdkafka) and an S3 key id
/// (so the secret key signs requests), both pointing where nothing listens.
fn unreachable_config(kafka_mode: &str) -> tempfile::NamedTempFile {
    let text = format!(
        r#"[kafka]
mode = "{kafka_mode}"
bootstrap_servers = "127.0.0.1:1"
security_protocol = "sasl_plaintext"
sasl_mechanism = "PLAIN"
sasl_username = "egx-user"

[sink]
kind = "s3"
bucket = "egx-secrets"
endpoint = "http://127.0.0.1:1"
access_key_id = "egx-key-id"

[log]
level = "DEBUG"
format = "json"
"#
    );
    config_file(&text)
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    f.write_all(text.as_bytes()).expect("write config");
    f
}

/// `check-config` prints every secret as `<redacted>`, with and without a config file.
#[test]
fn check_config_redacts_every_secret() {
    let out = run_without_leak(binary().arg("check-config"), "check-config");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in ["sasl_password", "secret_access_key", "auth_token"] {
        assert!(stdout.contains(&format!("{key} = \"<redacted>\"")), "{key} not redacted:\n{stdout}");
    }
    assert!(
        stdout.contains(CANARY_KEY_ID) && stdout.contains(CANARY_USER),
        "environment not read:\n{stdout}"
    );

    let cfg = unreachable_config("external");
    let out = run_without_leak(binary().arg("--config").arg(cfg.path()).arg("check-config"), "check-config");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `--help` and `--version` of the binary and of every subcommand it lists show no secret.
#[test]
fn help_of_every_subcommand_shows_no_secret() {
    let out = run_without_leak(binary().arg("--help"), "--help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let subcommands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(subcommands.len() >= 7, "subcommands not found in:\n{help}");
    for sub in subcommands {
        let out = run_without_leak(binary().args([sub, "--help"]), &format!("{sub} --help"));
        assert!(out.status.success(), "{sub} --help: {}", stderr(&out));
    }
    run_without_leak(binary().arg("--version"), "--version");
}

/// A config error (an unknown key, here a misspelt secret holding the secret) names the
/// key, not the value.
#[test]
fn config_errors_show_no_secret() {
    let cfg = config_file(&format!("[kafka]\nsasl_passwd = \"{SENTINEL}\"\n"));
    let out = run_without_leak(binary().arg("--config").arg(cfg.path()).arg("check-config"), "unknown key");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sasl_passwd"), "{}", stderr(&out));

    let out = run_without_leak(
        binary().env("EGX__KAFKA__SASL_PASSWORDD", SENTINEL).arg("check-config"),
        "unknown environment key",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sasl_passwordd"), "{}", stderr(&out));
}

/// `check` against a SASL Kafka where nothing listens fails with the reason and no secret.
#[test]
fn failed_kafka_check_shows_no_secret() {
    let cfg = unreachable_config("external");
    let out = run_without_leak(binary().arg("--config").arg(cfg.path()).arg("check"), "check (Kafka)");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Kafka at 127.0.0.1:1"), "{}", stderr(&out));
}

/// `check` against an S3 endpoint where nothing listens fails with the reason and no secret.
#[test]
fn failed_s3_check_shows_no_secret() {
    let cfg = unreachable_config("embedded");
    let out = run_without_leak(binary().arg("--config").arg(cfg.path()).arg("check"), "check (S3)");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("object store is not usable"), "{}", stderr(&out));
}

/// A whole `run --once` of the embedded default with DEBUG JSON logs prints no secret.
#[test]
fn debug_logs_of_a_run_show_no_secret() {
    let work = tempfile::tempdir().expect("temp dir");
    let out = run_without_leak(
        binary()
            .current_dir(work.path())
            .args(["--log-level", "DEBUG"])
            .args(["--log-format", "json"])
            .args(["run", "--once"]),
        "run --once",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(r#""level":"DEBG""#), "no DEBUG lines were logged:\n{}", stderr(&out));
}

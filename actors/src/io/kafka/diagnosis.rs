//! Telling a refusal from an outage in what librdkafka reports. librdkafka retries every
//! connection for ever and reports why through its error and log callbacks only: a wrong
//! password, an untrusted broker certificate or a plaintext client on a TLS listener all
//! end, for the application, in "all brokers down" or a time-out. This module reads those
//! reports, turns the ones that are refusals into a [`Refusal`] that names the cause and
//! the setting to fix, and keeps the latest one where the start-up check, the readiness
//! endpoint and the actors can see it ([`KafkaWatch`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use slog::{debug, info, warn, Logger};

use crate::io::kafka::KafkaConfig;
use crate::metrics::Metrics;
use crate::refusal::{Refusal, RefusalKind};
use crate::retry::{Report, RetryReport};

/// The refusal, if any, that a librdkafka report (an error code and its text) means for a
/// client configured as `cfg`.
pub fn classify(code: Option<RDKafkaErrorCode>, text: &str, cfg: &KafkaConfig) -> Option<Refusal> {
    use RDKafkaErrorCode as C;
    let at = &cfg.bootstrap_servers;
    let sasl = format!(
        "user {:?} with {} (kafka.sasl_username, kafka.sasl_password or EGX__KAFKA__SASL_PASSWORD, kafka.sasl_mechanism)",
        cfg.sasl_username, cfg.sasl_mechanism
    );
    if matches!(code, Some(C::Authentication | C::SaslAuthenticationFailed))
        || text.contains("SASL authentication error")
    {
        return Some(Refusal::kafka(
            RefusalKind::Authentication,
            format!("the brokers at {at} refused the credentials of {sasl}: {}", brief(text)),
        ));
    }
    if text.contains("certificate verify failed") || text.contains("could not be verified") {
        let ca =
            if cfg.ssl_ca_location.is_empty() { "the system's trust store" } else { &cfg.ssl_ca_location };
        return Some(Refusal::kafka(
            RefusalKind::Tls,
            format!(
                "the TLS certificate of the brokers at {at} is not trusted (trusted now: {ca}); set kafka.ssl_ca_location to the CA that signed it"
            ),
        ));
    }
    if code == Some(C::SSL) {
        return Some(Refusal::kafka(
            RefusalKind::Tls,
            format!(
                "the TLS handshake with {at} failed: {}; check kafka.security_protocol and kafka.ssl_ca_location",
                brief(text)
            ),
        ));
    }
    // A TLS listener closes a plaintext connection at once, while the client asks for
    // the API versions (librdkafka's own hint for it is not always attached).
    let plaintext_dropped = !cfg.security_protocol.uses_tls()
        && text.contains("Disconnected")
        && text.contains("in state APIVERSION_QUERY");
    if text.contains("incorrect security.protocol configuration") || plaintext_dropped {
        return Some(Refusal::kafka(
            RefusalKind::Tls,
            format!(
                "the brokers at {at} closed the connection during the handshake: the listener expects TLS, but kafka.security_protocol is {}; set it to ssl or sasl_ssl",
                cfg.security_protocol.as_librdkafka()
            ),
        ));
    }
    if text.contains("broker might require SASL authentication") {
        return Some(Refusal::kafka(
            RefusalKind::Authentication,
            format!(
                "the brokers at {at} closed the connection after the handshake: the listener expects SASL, but kafka.security_protocol is {}; set it to sasl_ssl or sasl_plaintext with kafka.sasl_username and kafka.sasl_password",
                cfg.security_protocol.as_librdkafka()
            ),
        ));
    }
    let user = if cfg.security_protocol.uses_sasl() {
        format!("user {:?} (kafka.sasl_username)", cfg.sasl_username)
    } else {
        "this client".to_string()
    };
    let missing = match code {
        Some(C::TopicAuthorizationFailed) => format!(
            "{user} may not use topic {:?} or {:?}: grant Describe, Read (consume) and Write (produce, dead letters) on them",
            cfg.topic,
            cfg.dlq_topic()
        ),
        Some(C::GroupAuthorizationFailed) => format!(
            "{user} may not use consumer group {:?} (kafka.consumer_group): grant Read and Describe on the group",
            cfg.consumer_group
        ),
        Some(C::ClusterAuthorizationFailed) => format!(
            "{user} may not write to the cluster (the idempotent producer needs Write on topic {:?}, or IdempotentWrite on the cluster with brokers before 3.0): {}",
            cfg.topic,
            brief(text)
        ),
        _ => return None,
    };
    Some(Refusal::kafka(RefusalKind::Authorization, missing))
}

/// librdkafka's text without the broker-name prefix and the timing suffix.
fn brief(text: &str) -> &str {
    let text = text.rsplit_once(" (after ").map_or(text, |(t, _)| t);
    text.split_once("/bootstrap: ").map_or(text, |(_, t)| t)
}

/// Where refusals seen by a pipeline's Kafka clients are kept: the latest one, for the
/// start-up check, and the `kafka` entry of the metrics' refusals, for `/readyz`.
#[derive(Clone)]
pub struct KafkaWatch {
    cfg: Arc<KafkaConfig>,
    latest: Arc<Mutex<Option<Refusal>>>,
    /// Other client errors (brokers down): logged first, then summarised.
    trouble: Arc<Mutex<RetryReport>>,
    metrics: Arc<Metrics>,
    log: Logger,
}

/// How often continuing client errors (an unreachable broker) are summarised in the log.
const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl KafkaWatch {
    /// A watch for clients configured as `cfg`.
    pub fn new(cfg: &KafkaConfig, metrics: Arc<Metrics>, log: Logger) -> Self {
        let trouble = Arc::new(Mutex::new(RetryReport::new(SUMMARY_EVERY)));
        Self { cfg: Arc::new(cfg.clone()), latest: Arc::default(), trouble, metrics, log }
    }

    /// The configuration the watched clients use.
    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// The latest refusal seen, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        self.latest.lock().ok().and_then(|r| r.clone())
    }

    /// Forgets refusals and trouble: the brokers answered as they should.
    pub fn clear(&self) {
        if let Ok(mut r) = self.latest.lock() {
            *r = None;
        }
        self.metrics.accepted("kafka");
        if let Some((errors, over)) = self.trouble.lock().ok().and_then(|mut t| t.recovered(Instant::now())) {
            info!(self.log, "Kafka answers again."; "client_errors" => errors, "after_secs" => over.as_secs());
        }
    }

    /// Reads one librdkafka report; true when it is a refusal.
    pub fn observe(&self, code: Option<RDKafkaErrorCode>, text: &str) -> bool {
        let Some(refusal) = classify(code, text, &self.cfg) else { return false };
        let Ok(mut latest) = self.latest.lock() else { return true };
        if latest.as_ref() != Some(&refusal) {
            warn!(self.log, "Kafka refuses this client; retrying will not help until the setting is fixed."; "reason" => %refusal);
        }
        self.metrics.refused("kafka", refusal.clone());
        *latest = Some(refusal);
        true
    }

    /// Reads a client's global error report. Errors that are not refusals (a broker
    /// down) are logged once, then summarised, not once per reconnect attempt.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if self.observe(error.rdkafka_error_code(), reason) {
            return;
        }
        let report = self.trouble.lock().map(|mut t| t.failed(Instant::now())).unwrap_or(Report::Quiet);
        match report {
            Report::First => {
                warn!(self.log, "Kafka client error; librdkafka reconnects with backoff."; "error" => %error, "reason" => reason)
            }
            Report::Summary { failures, over } => {
                warn!(self.log, "Kafka client errors continue."; "errors" => failures, "for_secs" => over.as_secs(), "last" => reason)
            }
            Report::Quiet => debug!(self.log, "Kafka client error."; "error" => %error, "reason" => reason),
        }
    }

    /// Reads a client's log line (TLS and protocol hints only come this way).
    pub fn log_line(&self, level: RDKafkaLogLevel, facility: &str, line: &str) {
        if !self.observe(None, line) && (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            debug!(self.log, "librdkafka."; "facility" => facility, "line" => line);
        }
    }
}

/// A client context that reports refusals to a [`KafkaWatch`]: the producer's, the admin
/// client's and the start-up check's.
#[derive(Clone)]
pub struct WatchedContext(pub KafkaWatch);

impl ClientContext for WatchedContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for WatchedContext {}

impl rdkafka::producer::ProducerContext for WatchedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::kafka::SecurityProtocol;

    fn secure() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "b:9094".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_username: "egx".into(),
            sasl_password: crate::config::Secret::new("hunter2-sentinel"),
            ssl_ca_location: "/etc/ca.pem".into(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn what_librdkafka_reports_is_told_apart() {
        let cfg = secure();
        let auth = classify(
            Some(RDKafkaErrorCode::Authentication),
            "sasl_ssl://b:9094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 119ms in state AUTH_REQ)",
            &cfg,
        )
        .unwrap();
        assert_eq!(auth.kind, RefusalKind::Authentication);
        assert!(auth.message.contains("kafka.sasl_password") && auth.message.contains("\"egx\""), "{auth}");
        assert!(!auth.to_string().contains("hunter2"), "never the secret");
        let tls = classify(
            Some(RDKafkaErrorCode::SSL),
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified",
            &cfg,
        )
        .unwrap();
        assert_eq!(tls.kind, RefusalKind::Tls);
        assert!(
            tls.message.contains("kafka.ssl_ca_location") && tls.message.contains("/etc/ca.pem"),
            "{tls}"
        );
        let plaintext = KafkaConfig { security_protocol: SecurityProtocol::Plaintext, ..cfg.clone() };
        let mismatch = classify(
            None,
            "127.0.0.1:9094/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 1ms in state APIVERSION_QUERY)",
            &plaintext,
        )
        .unwrap();
        assert_eq!(mismatch.kind, RefusalKind::Tls);
        assert!(mismatch.message.contains("kafka.security_protocol is plaintext"), "{mismatch}");
        let dropped = "[thrd:127.0.0.1:9094/bootstrap]: 127.0.0.1:9094/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 1ms in state APIVERSION_QUERY)";
        assert_eq!(classify(None, dropped, &plaintext).map(|r| r.kind), Some(RefusalKind::Tls));
        assert_eq!(classify(None, dropped, &cfg), None, "a TLS client dropped there is not told to use TLS");
        let group = classify(Some(RDKafkaErrorCode::GroupAuthorizationFailed), "", &cfg).unwrap();
        assert_eq!(group.kind, RefusalKind::Authorization);
        assert!(group.message.contains("kafka.consumer_group"), "{group}");
        let topic = classify(Some(RDKafkaErrorCode::TopicAuthorizationFailed), "", &cfg).unwrap();
        assert!(topic.message.contains("egx_market_data.dlq"), "{topic}");
        for outage in [
            (Some(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down"),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "Connect to ipv4#127.0.0.1:9092 failed: Connection refused",
            ),
        ] {
            assert_eq!(classify(outage.0, outage.1, &cfg), None, "an outage is not a refusal");
        }
    }
}

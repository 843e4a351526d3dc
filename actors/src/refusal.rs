//! Refusals: a service answered, but will not serve the pipeline as it is configured —
//! credentials refused, a certificate not trusted, a permission missing, a static member
//! fenced by another. Retrying cannot help until an operator changes a setting, so a
//! refusal ends the run with a message that names the cause and the setting to fix (never
//! a secret) and an exit code of its own, instead of a retry storm that looks like an
//! outage. Outages (no answer, 5xx, time-outs) are not refusals: those are retried.

use std::fmt;

/// What was refused; the binary maps each kind to its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusalKind {
    /// Credentials refused: SASL user or password, S3 access keys.
    Authentication,
    /// TLS: the peer's certificate is not trusted, or client and listener disagree on
    /// whether to speak TLS at all.
    Tls,
    /// Authenticated, but not allowed: Kafka ACLs, S3 or KMS permissions.
    Authorization,
    /// A static consumer fenced by another process with the same `group.instance.id`.
    Fenced,
}

impl RefusalKind {
    /// The cause in words, as messages and `/readyz` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication failed",
            Self::Tls => "TLS failed",
            Self::Authorization => "not authorized",
            Self::Fenced => "fenced",
        }
    }
}

/// A service's refusal: its kind and a message naming the cause and the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused.
    pub kind: RefusalKind,
    /// The service: `Kafka` or `the object store`.
    pub service: &'static str,
    /// What happened and which setting to fix; never contains a secret.
    pub message: String,
}

impl Refusal {
    /// A refusal by Kafka.
    pub fn kafka(kind: RefusalKind, message: impl Into<String>) -> Self {
        Self { kind, service: "Kafka", message: message.into() }
    }

    /// A refusal by the object store.
    pub fn store(kind: RefusalKind, message: impl Into<String>) -> Self {
        Self { kind, service: "the object store", message: message.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused ({}): {}", self.service, self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_who_refused_what_and_why() {
        let r = Refusal::kafka(RefusalKind::Tls, "set kafka.ssl_ca_location");
        assert_eq!(r.to_string(), "Kafka refused (TLS failed): set kafka.ssl_ca_location");
    }
}

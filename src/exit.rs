//! Exit codes: one per outcome an outer supervisor (systemd, Kubernetes, a script) must
//! tell apart, because each asks for something else — fix the command line, wait and
//! restart, or fix a setting that a restart cannot fix. The README lists them.

use egx_actors::refusal::RefusalKind;

/// The pipeline failed to start, a fetch failed in a one-shot run, or a backfill left a
/// symbol failed.
pub const FAILED: u8 = 1;
/// The configuration or the command line is wrong.
pub const USAGE: u8 = 2;
/// The supervisor gave up after too many restarts.
pub const GAVE_UP: u8 = 3;
/// A static consumer was fenced by another process with the same
/// `kafka.group_instance_id` (restarting it would fence the other in turn).
pub const FENCED: u8 = 4;
/// Kafka or the object store refused the credentials.
pub const AUTHENTICATION: u8 = 5;
/// TLS failed: an untrusted certificate, or TLS on one side only.
pub const TLS: u8 = 6;
/// Kafka or the object store refused a permission (ACLs, S3, KMS).
pub const AUTHORIZATION: u8 = 7;
/// A backfill stopped by a signal (128 + SIGINT, as shells report Ctrl-C).
pub const INTERRUPTED: u8 = 130;

/// The exit code of a refusal: one per cause, so that a deployment can tell them apart.
pub fn refused(kind: RefusalKind) -> u8 {
    match kind {
        RefusalKind::Authentication => AUTHENTICATION,
        RefusalKind::Tls => TLS,
        RefusalKind::Authorization => AUTHORIZATION,
        RefusalKind::Fenced => FENCED,
        _ => FAILED,
    }
}

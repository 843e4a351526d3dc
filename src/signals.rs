//! The signals the long-running commands answer: SIGINT/SIGTERM stop them gracefully
//! (a second one at once), SIGHUP reloads the symbol list. As futures, so a command
//! `select!`s on them beside its work instead of installing handlers.

/// Resolves on SIGINT or SIGTERM (never elsewhere).
pub async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on SIGHUP (never elsewhere).
pub async fn reload() {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        hup.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

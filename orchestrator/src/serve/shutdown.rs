//! Stopping the server: Ctrl-C (or SIGTERM) fires one signal that every open event stream and
//! the live-runs tracker wait on, so the HTTP server's graceful shutdown does not wait forever
//! for streams that never end by themselves.

/// The server is stopping (Ctrl-C): open event streams end so that it can.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Shutdown {
    /// A shutdown signal and the function that fires it.
    pub(crate) fn new() -> (Shutdown, impl Fn()) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (Shutdown { rx }, move || {
            tx.send_replace(true);
        })
    }

    /// True once the server is stopping.
    pub(crate) fn fired(&self) -> bool {
        *self.rx.borrow()
    }

    /// Returns once the server is stopping.
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        // An error means the sender is gone: the server is going away as well.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

//! Signals to the runner. Stages run in their own process groups, so a Ctrl-C at the terminal
//! reaches only us; we forward it: the first SIGINT/SIGTERM/SIGHUP asks every running stage to
//! stop gracefully (SIGTERM, grace, SIGKILL), a second one kills at once.

use exec::CancelRequest;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Starts listening; the task lives as long as the runtime.
pub fn spawn_listener(cancel: watch::Sender<CancelRequest>) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                _ = int.recv() => Signal::SIGINT as i32,
                _ = term.recv() => Signal::SIGTERM as i32,
                _ = hup.recv() => Signal::SIGHUP as i32,
            };
            cancel.send_modify(|c| {
                *c = match *c {
                    // A fatal-error stop (signal 0) becomes a signal cancellation: the user asked.
                    CancelRequest::None | CancelRequest::Graceful { signal: 0 } => {
                        CancelRequest::Graceful { signal: sig }
                    }
                    CancelRequest::Graceful { signal } | CancelRequest::Immediate { signal } => {
                        CancelRequest::Immediate { signal }
                    }
                };
            });
            tracing::warn!(signal = sig, "stopping stages");
        }
    });
    Ok(())
}

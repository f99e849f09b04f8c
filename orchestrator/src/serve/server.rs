//! Starting and stopping the server: check the access rules, bind, print the URL, route every
//! resource, serve until Ctrl-C (or SIGTERM), then end the open event streams and return.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::errors::AppError;
use crate::record::layout::Roots;
use crate::serve::shutdown::Shutdown;
use crate::serve::state::{Access, AppState, Shared};
use crate::serve::watch::DirWatch;
use crate::serve::{approvals, events, files, live, logs, pages, runs, security, stages};

/// What `serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Token required on every request.
    pub token: Option<String>,
    /// Open the dashboard in a browser once listening.
    pub open: bool,
}

/// Serves the runs under `roots` until Ctrl-C or SIGTERM.
pub async fn run(roots: Roots, opts: ServeOptions) -> Result<(), AppError> {
    let loopback = opts.bind.ip().is_loopback();
    if opts.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(AppError::Usage("--token must not be empty".into()));
    }
    if !loopback && opts.token.is_none() {
        return Err(AppError::Usage(format!(
            "--bind `{}` is not a loopback address: anyone who can reach it could read every run and cancel them, so it needs a token (--token T or CODEX_ORCHESTRATOR_SERVE_TOKEN)",
            opts.bind
        )));
    }
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|e| AppError::Usage(format!("cannot listen on `{}`: {e}", opts.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Usage(format!("cannot listen on `{}`: {e}", opts.bind)))?;
    let (shutdown, fire) = Shutdown::new();
    let dirs = DirWatch::new();
    let live = live::start(roots.clone(), dirs.clone(), shutdown.clone())
        .map_err(|e| AppError::Internal(format!("cannot start the runs tracker: {e}")))?;
    let access = Access {
        token: opts.token.clone(),
        loopback,
    };
    let runs_dir = roots.runs.clone();
    let waker = dirs.clone();
    let state: AppState = Arc::new(Shared::new(roots, dirs, live, access, shutdown));
    let url = url(addr, opts.token.as_deref());
    // The URL is this command's output (stdout); the rest is talk (stderr).
    crate::report::output::line(&url);
    crate::console::err_line(&format!(
        "serving the runs in `{}` at {url} (Ctrl-C stops)",
        runs_dir.display()
    ));
    if opts.open {
        open_browser(&url);
    }
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| AppError::Internal(format!("cannot listen for Ctrl-C: {e}")))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AppError::Internal(format!("cannot listen for SIGTERM: {e}")))?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            crate::console::err_line("stopping");
            fire();
            waker.wake();
        })
        .await
        .map_err(|e| AppError::Internal(format!("the server failed: {e}")))
}

/// Every resource. No compression layer anywhere: it would buffer the event streams.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::runs_page))
        .route("/runs/{id}", get(pages::run_page))
        .route("/assets/{name}", get(pages::asset))
        .route("/api/runs", get(runs::list))
        .route("/api/pipelines", get(runs::pipelines))
        .route("/api/events", get(events::all_events))
        .route("/api/runs/{id}", get(runs::show))
        .route("/api/runs/{id}/cancel", post(runs::cancel))
        .route("/api/runs/{id}/approvals", post(approvals::decide))
        .route("/api/runs/{id}/events", get(events::run_events))
        .route("/api/runs/{id}/stages", get(stages::stages))
        .route("/api/runs/{id}/junit.xml", get(files::junit))
        .route("/api/runs/{id}/files/{*path}", get(files::raw))
        .route("/api/runs/{id}/stages/{stage}/log", get(logs::download))
        .route("/api/runs/{id}/stages/{stage}/tail", get(logs::tail))
        .route(
            "/api/runs/{id}/stages/{stage}/log/events",
            get(logs::follow),
        )
        .fallback(pages::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}

/// The address a browser on this machine opens (a wildcard bind is reached through loopback).
fn url(addr: SocketAddr, token: Option<&str>) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    match token {
        Some(t) => format!(
            "http://{host}:{}/?token={}",
            addr.port(),
            t.bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                })
                .collect::<String>()
        ),
        None => format!("http://{host}:{}/", addr.port()),
    }
}

/// `--open`: the desktop's browser, if there is one; failing is only a note.
fn open_browser(url: &str) {
    let opened = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = opened {
        crate::console::err_line(&format!(
            "note: cannot open a browser (xdg-open: {e}); open {url} yourself"
        ));
    }
}

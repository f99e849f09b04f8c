//! `serve`: a live web dashboard of the runs under `.runs`, with a JSON API and Server-Sent
//! Events. It only reads what runners write (the history index, manifests, `events.jsonl`,
//! stage logs) and never writes a manifest; cancelling goes through `control::cancel`, the path
//! of `cancel --run`, and approving through `control::approvals::decide`, the path of
//! `approve` / `reject`. One file per resource: `runs.rs` (list, pipelines, one run, cancel),
//! `approvals.rs` (Approve / Reject), `stages.rs` (graph and timeline data), `logs.rs` (stage
//! output), `events.rs` (SSE),
//! `files.rs` (raw files, JUnit), `pages.rs` + `assets/` (the HTML, CSS and JS). Below them:
//! `live.rs` (runs the index does not know yet), `watch.rs` (inotify), `paths.rs` (no path
//! leaves `.runs`), `security.rs` (token, host and origin rules), `sse.rs`, `state.rs`,
//! `shutdown.rs`, `error.rs`; `server.rs` wires them together.

mod approvals;
mod assets;
mod error;
mod events;
mod files;
mod live;
mod logs;
mod pages;
mod paths;
mod runs;
mod security;
mod server;
mod shutdown;
mod sse;
mod stages;
mod state;
mod watch;

pub use server::{run, ServeOptions};

//! The dashboard's files, compiled into the binary: two HTML pages, one stylesheet, plain
//! JavaScript modules (no build step, no framework, nothing fetched from elsewhere: the
//! dashboard works offline) and an icon.

/// An embedded file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    /// Its bytes.
    pub(crate) body: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
}

/// The runs page.
pub(crate) const RUNS_HTML: &str = include_str!("runs.html");
/// The run page; `{{RUN_ID}}` is replaced by the (escaped) run id.
pub(crate) const RUN_HTML: &str = include_str!("run.html");

const JS: &str = "text/javascript; charset=utf-8";

/// The file `/assets/<name>`, if there is one.
pub(crate) fn get(name: &str) -> Option<Asset> {
    let (body, content_type) = match name {
        "app.css" => (include_str!("app.css"), "text/css; charset=utf-8"),
        "common.js" => (include_str!("common.js"), JS),
        "runs.js" => (include_str!("runs.js"), JS),
        "run.js" => (include_str!("run.js"), JS),
        "approvals.js" => (include_str!("approvals.js"), JS),
        "icon.svg" => (include_str!("icon.svg"), "image/svg+xml"),
        _ => return None,
    };
    Some(Asset { body, content_type })
}

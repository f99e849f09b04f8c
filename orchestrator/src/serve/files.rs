//! A run's files as they are on disk (`GET /api/runs/{id}/files/{path}`: the manifest, the
//! event stream, the logs, error files) and its JUnit report rendered on demand
//! (`GET /api/runs/{id}/junit.xml`). Raw files are sent as plain text or JSON with a sandboxing
//! Content-Security-Policy: a log that contains HTML is never run as a page.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use crate::serve::error::{blocking, ApiError};
use crate::serve::paths;
use crate::serve::state::AppState;

/// What a raw file may do in the browser: nothing (no script, no style, no fetch).
const RAW_CSP: &str = "default-src 'none'; sandbox";

/// `GET /api/runs/{id}/files/{*path}`.
pub(crate) async fn raw(
    State(state): State<AppState>,
    Path((run_id, rel)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (path, _run) = blocking(move || {
        let run = paths::locate(&state.roots, &state.runs_real(), &run_id)?;
        let path = paths::file_in_run(&run, &rel)?;
        Ok((path, run))
    })
    .await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the file: {e}")))?;
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    // In pieces: a log of hundreds of MiB is never held whole.
    let body = Body::from_stream(futures_util::stream::unfold(
        Some(file),
        |file| async move {
            let mut f = file?;
            let mut buf = vec![0u8; 64 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    ));
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(RAW_CSP),
    );
    Ok(res)
}

/// `GET /api/runs/{id}/junit.xml`: the report `report junit --run ID` writes.
pub(crate) async fn junit(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let xml = blocking(move || {
        let run = paths::locate(&state.roots, &state.runs_real(), &run_id)?;
        let m = crate::history::read_manifest(&run.manifest).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                format!("run `{run_id}` cannot be read: {}", e.one_line()),
            )
        })?;
        Ok(crate::report::junit::render(&m, &state.roots))
    })
    .await?;
    let mut res = xml.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(RAW_CSP),
    );
    Ok(res)
}

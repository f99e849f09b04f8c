//! The HTML pages (`/` the runs, `/runs/{id}` one run) and their static files
//! (`/assets/{name}`). The pages are shells the scripts fill from the JSON API; the run page
//! gets its run id rendered into it (escaped) on the server.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::serve::assets;
use crate::serve::error::{blocking, ApiError};
use crate::serve::paths;
use crate::serve::state::AppState;

/// `GET /`.
pub(crate) async fn runs_page() -> Html<&'static str> {
    Html(assets::RUNS_HTML)
}

/// `GET /runs/{id}`: 404 for a run that does not exist.
pub(crate) async fn run_page(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Response {
    let id = run_id.clone();
    let found = blocking(move || paths::locate(&state.roots, &state.runs_real(), &id)).await;
    match found {
        Ok(_) => {
            Html(assets::RUN_HTML.replace("{{RUN_ID}}", &escape_html(&run_id))).into_response()
        }
        Err(e) => not_found_page(&e.message),
    }
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match assets::get(&name) {
        Some(a) => {
            let mut res = a.body.into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            );
            // Revalidated every time: a new binary serves new files under the same names.
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
        None => not_found_page(&format!("no asset `{name}`")),
    }
}

/// Anything else: JSON under `/api/`, a page elsewhere.
pub(crate) async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found(format!("no API resource `{}`", uri.path())).into_response()
    } else {
        not_found_page(&format!("no page `{}`", uri.path()))
    }
}

fn not_found_page(message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · codex-orchestrator</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main><h1>Not found</h1>\
         <p>{}</p><p><a href=\"/\">All runs</a></p></main></body></html>",
        escape_html(message)
    );
    (StatusCode::NOT_FOUND, Html(body)).into_response()
}

/// Text made safe for HTML content and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
    }
}

//! Who may talk to the server, checked on every request before any handler runs:
//! - bound to loopback without a token: only loopback `Host` names (`localhost`, `127.x`,
//!   `[::1]`) are served, so a web page elsewhere cannot reach the server by rebinding its own
//!   DNS name to 127.0.0.1;
//! - with a token: every request carries it, as `Authorization: Bearer <token>` or as the
//!   cookie set when a page is first opened with `?token=<token>` (then redirected to the same
//!   URL without it, so it does not stay in the address bar or history);
//! - requests that change something (POST) come from the dashboard's own pages: a
//!   `Sec-Fetch-Site` other than `same-origin`, or an `Origin` other than the server's own,
//!   is refused (a script on another site cannot cancel a run, token or not);
//! - every response carries a strict Content-Security-Policy (scripts, styles and fetches
//!   from this server only, no inline code, no framing) and `nosniff`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::serve::error::ApiError;
use crate::serve::state::AppState;

/// The cookie that carries the token for pages and their scripts.
pub(crate) const COOKIE: &str = "co_serve_token";

/// The pages' policy: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The middleware.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let access = &state.access;
    let headers = req.headers();
    if access.token.is_none() && access.loopback && !host_is_loopback(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server answers loopback host names only (localhost, 127.0.0.1, [::1])",
        );
    }
    if let Some(token) = &access.token {
        if let Some(given) = query_token(req.uri()) {
            if req.method() == Method::GET && same(&given, token) {
                return remember(req.uri());
            }
            return refuse(StatusCode::UNAUTHORIZED, "wrong token");
        }
        let presented = bearer(headers).or_else(|| cookie(headers, COOKIE));
        if !presented.is_some_and(|t| same(&t, token)) {
            let mut res = refuse(
                StatusCode::UNAUTHORIZED,
                "a token is required: open the URL `serve` printed (with ?token=), or send `Authorization: Bearer <token>`",
            );
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return res;
        }
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if !safe {
        if let Err(why) = same_origin(headers) {
            return refuse(StatusCode::FORBIDDEN, &why);
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut res = ApiError::new(status, message).into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// The host part of `Host` is a loopback name or address. No `Host` at all is not a browser
/// (browsers always send it), so it is let through.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return !headers.contains_key(header::HOST);
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `token` query parameter, decoded.
fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == "token").then(|| percent_decode(v))
    })
}

/// `%XX` escapes decoded (`+` stays `+`: tokens are not form data).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = match b.get(i + 1..i + 3) {
            Some(&[h, l]) if b[i] == b'%' && h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                std::str::from_utf8(&[h, l])
                    .ok()
                    .and_then(|x| u8::from_str_radix(x, 16).ok())
            }
            _ => None,
        };
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// 303 to the same URL without `token`, setting the cookie.
fn remember(uri: &Uri) -> Response {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token=") && *p != "token")
        .collect();
    let target = if rest.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    };
    let mut res = StatusCode::SEE_OTHER.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&target) {
        h.insert(header::LOCATION, v);
    }
    if let Some(token) = query_token(uri) {
        let cookie = format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            cookie_safe(&token)
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    res
}

/// Tokens are compared as given; a cookie value cannot hold `;`, `,`, spaces or quotes, so
/// those are percent-encoded in the cookie and decoded when it comes back.
fn cookie_safe(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\' | b'%') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| percent_decode(v))
        })
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A state-changing request comes from this server's own pages (or from a client that is not
/// a browser: no `Origin`, no `Sec-Fetch-Site`).
fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" {
            return Err(format!(
                "cross-origin request refused (Sec-Fetch-Site: {site})"
            ));
        }
    }
    if let Some(origin) = get("origin") {
        let host = get("host").unwrap_or("");
        let own = [format!("http://{host}"), format!("https://{host}")];
        if !own.iter().any(|o| o == origin) {
            return Err(format!("cross-origin request refused (Origin: {origin})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn loopback_hosts_only() {
        for ok in [
            "localhost:7878",
            "127.0.0.1:7878",
            "127.3.4.5",
            "[::1]:80",
            "LOCALHOST",
            "app.localhost:1",
        ] {
            assert!(host_is_loopback(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example:7878",
            "10.0.0.1:7878",
            "127.0.0.1.evil.example",
            "[::2]:1",
            "",
        ] {
            assert!(!host_is_loopback(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(host_is_loopback(&HeaderMap::new()));
    }

    #[test]
    fn tokens_come_from_bearer_cookie_or_query_and_round_trip_through_the_cookie() {
        let h = headers(&[("authorization", "Bearer s3cret")]);
        assert_eq!(bearer(&h).as_deref(), Some("s3cret"));
        let h = headers(&[("cookie", "a=b; co_serve_token=x%3By; c=d")]);
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("x;y"));
        let uri: Uri = "/runs/r?x=1&token=a%20b%25&y=2".parse().expect("uri");
        assert_eq!(query_token(&uri).as_deref(), Some("a b%"));
        let res = remember(&uri);
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[header::LOCATION], "/runs/r?x=1&y=2");
        let set = res.headers()[header::SET_COOKIE].to_str().expect("ascii");
        let value = set
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v)
            .expect("cookie value");
        assert_eq!(percent_decode(value), "a b%");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn posts_from_other_origins_are_refused() {
        let own = headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:7878"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(same_origin(&own).is_ok());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:7878")])).is_ok());
        for bad in [
            headers(&[
                ("host", "127.0.0.1:7878"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:7878"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "same-site")]),
        ] {
            assert!(same_origin(&bad).is_err(), "{bad:?}");
        }
    }
}

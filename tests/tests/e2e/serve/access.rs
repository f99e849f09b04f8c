//! Who may use the server: loopback by default (and loopback `Host` names only), a token for
//! any other address (refused without one), the token by bearer header or by the cookie a
//! `?token=` link sets, cross-origin POSTs refused, the security headers, and the cancel
//! endpoint doing what `cancel --run` does.

use std::time::Duration;

use super::http::request;
use super::{eventually, run_of, start_in_background, Server};
use crate::harness::TestEnv;

const CONFIG: &str = r#"{"pipelines":[
  {"id":"quick","stages":[{"kind":"command","id":"a","command":"echo hi"}]},
  {"id":"long","stages":[{"kind":"command","id":"wait","command":"echo waiting; sleep 60"},
    {"kind":"command","id":"after","command":"echo never"}]}]}"#;

#[test]
fn a_non_loopback_address_needs_a_token() {
    let env = TestEnv::new().config(CONFIG);
    let out = env.cli(["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: --bind `0.0.0.0:0` is not a loopback address"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("CODEX_ORCHESTRATOR_SERVE_TOKEN"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "", "nothing served");
    let bad = env.cli(["serve", "--bind", "nonsense"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--bind `nonsense`"), "{}", bad.stderr);
    let empty = env.cli(["serve", "--token", " "]);
    assert_eq!(empty.code, 2, "{}", empty.stderr);
}

#[test]
fn with_a_token_every_request_needs_it() {
    let env = TestEnv::new().config(CONFIG);
    env.start("quick", &[]);
    // Bound to every interface; the test only ever talks to 127.0.0.1.
    let server = Server::start(&env, &["--bind", "0.0.0.0:0", "--token", "s3cret tok"]);
    assert!(
        server.url.ends_with("/?token=s3cret%20tok"),
        "{}",
        server.url
    );
    let addr = server.addr;
    let none = request(addr, "GET", "/api/runs", &[]);
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    assert!(none.json()["error"]
        .as_str()
        .expect("message")
        .contains("token"));
    assert_eq!(request(addr, "GET", "/", &[]).status, 401, "pages too");
    assert_eq!(
        request(addr, "GET", "/assets/app.css", &[]).status,
        401,
        "assets too"
    );
    assert_eq!(
        request(addr, "GET", "/api/events", &[]).status,
        401,
        "streams too"
    );
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/runs",
            &[("Authorization", "Bearer wrong")]
        )
        .status,
        401
    );
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/runs",
            &[("Authorization", "Bearer s3cret tok")]
        )
        .status,
        200
    );
    assert_eq!(request(addr, "GET", "/?token=wrong", &[]).status, 401);

    // The link `serve` prints: the token becomes a cookie, and the address loses it.
    let link = request(addr, "GET", "/runs/x?a=1&token=s3cret%20tok", &[]);
    assert_eq!(link.status, 303);
    assert_eq!(link.header("location"), Some("/runs/x?a=1"));
    let cookie = link.header("set-cookie").expect("cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let with_cookie = request(addr, "GET", "/api/runs", &[("Cookie", &pair)]);
    assert_eq!(with_cookie.status, 200);
    assert_eq!(
        with_cookie.json()["runs"].as_array().expect("runs").len(),
        1
    );
    // A token makes any Host name acceptable (the token is the protection).
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/runs",
            &[("Cookie", &pair), ("Host", "build-box.example:7878")]
        )
        .status,
        200
    );
    drop(server);

    // The environment variable works as --token does.
    let env = env.env("CODEX_ORCHESTRATOR_SERVE_TOKEN", "from-env");
    let server = Server::start(&env, &["--bind", "0.0.0.0:0"]);
    assert_eq!(request(server.addr, "GET", "/api/runs", &[]).status, 401);
    assert_eq!(
        request(
            server.addr,
            "GET",
            "/api/runs",
            &[("Authorization", "Bearer from-env")]
        )
        .status,
        200
    );
}

#[test]
fn without_a_token_only_loopback_host_names_are_served() {
    let env = TestEnv::new().config(CONFIG);
    let server = Server::start(&env, &[]);
    let port = server.addr.port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        assert_eq!(
            request(server.addr, "GET", "/api/runs", &[("Host", &host)]).status,
            200,
            "{host}"
        );
    }
    // A page on another site whose name was rebound to 127.0.0.1 sends its own name.
    let r = request(
        server.addr,
        "GET",
        "/api/runs",
        &[("Host", &format!("attacker.example:{port}"))],
    );
    assert_eq!(r.status, 403);
    assert!(r.json()["error"]
        .as_str()
        .expect("message")
        .contains("loopback"));
}

#[test]
fn pages_carry_a_strict_content_security_policy() {
    let env = TestEnv::new().config(CONFIG);
    let server = Server::start(&env, &[]);
    for path in ["/", "/api/runs", "/assets/run.js"] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").expect("csp");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let page = server.get("/").text();
    assert!(
        !page.contains("<script>") && !page.contains(" style="),
        "no inline code"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );
    assert_eq!(
        server.get("/assets/runs.js").header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}

#[test]
fn cancel_refuses_other_origins_and_otherwise_cancels_like_the_cli() {
    let env = TestEnv::new().config(CONFIG);
    let server = Server::start(&env, &[]);
    let mut runner = start_in_background(&env, "long");
    let run = run_of(&server, "long");
    let path = format!("/api/runs/{run}/cancel");
    let own = format!("http://{}", server.addr);
    eventually(Duration::from_secs(10), "the stage to start", || {
        let v = server.get(&format!("/api/runs/{run}")).json();
        (v["commands"][0]["status"] == "running").then_some(())
    });
    for headers in [
        vec![("Origin", "http://attacker.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site"), ("Origin", own.as_str())],
    ] {
        let r = request(server.addr, "POST", &path, &headers);
        assert_eq!(r.status, 403, "{headers:?}");
        assert!(r.json()["error"]
            .as_str()
            .expect("message")
            .contains("cross-origin"));
    }
    assert_eq!(
        request(server.addr, "GET", &path, &[]).status,
        405,
        "GET does not cancel"
    );
    assert_eq!(
        env.manifest(&run)["status"],
        "in_progress",
        "still running after the refusals"
    );

    let ok = request(
        server.addr,
        "POST",
        &path,
        &[("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(ok.status, 202, "{}", ok.text());
    assert_eq!(ok.json()["cancel_requested"], true);
    let status = runner.wait().expect("runner");
    assert_eq!(
        status.code(),
        Some(143),
        "the runner was sent SIGTERM, as by `cancel --run`"
    );
    let m = env.manifest(&run);
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["commands"][1]["status"], "pending");

    // Nobody left to cancel: a conflict, as `cancel --run` reports.
    let again = request(server.addr, "POST", &path, &[]);
    assert_eq!(again.status, 409);
    assert!(again.json()["error"]
        .as_str()
        .expect("message")
        .contains("no live runner"));
}

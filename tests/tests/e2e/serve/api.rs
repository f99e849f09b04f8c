//! The JSON API over recorded runs: the list with its filters and paging, the run object (the
//! same as `status --format json`), stage details, byte-exact log downloads, raw files, 404s
//! and path escapes, runs whose manifest is damaged or whose directory goes away, a run whose
//! runner was killed (listed abandoned), and a sub-pipeline stage's link to its child run.

use std::time::Duration;

use serde_json::Value;

use super::{eventually, Server};
use crate::harness::TestEnv;

const CONFIG: &str = r#"{"pipelines":[
  {"id":"mixed","title":"Mixed","stages":[
    {"kind":"command","id":"bytes","command":"printf 'caf\\303\\251 \\377\\376 end\\n'; printf 'warn \\200\\n' >&2"},
    {"kind":"command","id":"fails","command":"echo about to fail; exit 3","dependsOn":["bytes"],"retries":1},
    {"kind":"command","id":"never","command":"true","dependsOn":["fails"]}]},
  {"id":"ok","stages":[{"kind":"command","id":"one","command":"echo fine"}]},
  {"id":"parent","stages":[
    {"kind":"command","id":"prep","command":"true"},
    {"kind":"subpipeline","id":"nested","pipeline":"ok","dependsOn":["prep"]}]}
]}"#;

fn env_with_runs() -> (TestEnv, String, String) {
    let env = TestEnv::new().config(CONFIG);
    let failed = env.start("mixed", &[]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let ok = env.start("ok", &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    (env, failed.run_id(), ok.run_id())
}

#[test]
fn the_run_object_is_the_status_object_and_the_list_has_every_run() {
    let (env, failed, ok) = env_with_runs();
    let server = Server::start(&env, &[]);

    let list = server.get("/api/runs");
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let v = list.json();
    let ids: Vec<&str> = v["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [ok.as_str(), failed.as_str()], "newest first");
    let row = &v["runs"][1];
    assert_eq!(row["status"], "failed");
    assert_eq!(row["pipeline_id"], "mixed");
    assert_eq!(row["failed_stage"], "fails");
    assert_eq!(row["stages_total"], 3);
    assert_eq!(v["has_more"], false);

    // The same object as `status --run ID --format json`, but for the heartbeat's age.
    let mut api = server.get(&format!("/api/runs/{failed}")).json();
    let mut cli: Value = serde_json::from_str(
        &env.cli(["status", "--run", &failed, "--format", "json"])
            .stdout,
    )
    .expect("json");
    for v in [&mut api, &mut cli] {
        v["activity"]["age_seconds"] = Value::Null;
    }
    assert_eq!(api, cli);

    let stages = server.get(&format!("/api/runs/{failed}/stages")).json();
    let s = &stages["stages"];
    assert_eq!(stages["levels"], 3);
    assert_eq!(s[1]["depends_on"], serde_json::json!(["bytes"]));
    assert_eq!(
        (
            s[0]["level"].clone(),
            s[1]["level"].clone(),
            s[2]["level"].clone()
        ),
        (0.into(), 1.into(), 2.into())
    );
    assert_eq!(s[1]["status"], "failed");
    assert_eq!(s[1]["exit_code"], 3);
    assert_eq!(s[1]["error"]["reason"], "command-failed");
    assert_eq!(s[1]["error_file"], "errors/02-fails.json");
    // One span per attempt, for the timeline.
    let spans = s[1]["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(
        (spans[0]["attempt"].clone(), spans[1]["attempt"].clone()),
        (1.into(), 2.into())
    );
    assert!(spans
        .iter()
        .all(|sp| sp["ended_at"].is_string() && sp["exit_code"] == 3));
    assert!(spans[0]["ended_at"].as_str() <= spans[1]["started_at"].as_str());
    assert_eq!(s[2]["status"], "pending");

    let pipelines = server.get("/api/pipelines").json();
    let mixed = pipelines["pipelines"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["pipeline_id"] == "mixed")
        .expect("mixed")
        .clone();
    assert_eq!(
        (
            mixed["runs"].clone(),
            mixed["failed"].clone(),
            mixed["pass_rate"].clone()
        ),
        (1.into(), 1.into(), 0.0.into())
    );
    assert_eq!(mixed["recent"][0]["run_id"], failed.as_str());
}

#[test]
fn filters_and_paging() {
    let (env, failed, ok) = env_with_runs();
    let third = env.start("ok", &[]).run_id();
    let server = Server::start(&env, &[]);
    let ids = |path: &str| -> Vec<String> {
        server.get(path).json()["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r["run_id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids("/api/runs?status=failed"), [failed.as_str()]);
    assert_eq!(ids("/api/runs?pipeline=ok"), [third.clone(), ok.clone()]);
    assert_eq!(ids("/api/runs?task=0101&pipeline=mixed"), [failed.as_str()]);
    assert!(ids("/api/runs?task=other").is_empty());
    assert!(ids("/api/runs?since=2000-01-01").len() == 3);
    let page = server.get("/api/runs?limit=1&offset=1").json();
    assert_eq!(page["runs"][0]["run_id"], ok.as_str());
    assert_eq!(page["has_more"], true);
    let last = server.get("/api/runs?limit=1&offset=2").json();
    assert_eq!(last["runs"][0]["run_id"], failed.as_str());
    assert_eq!(last["has_more"], false);
    for bad in [
        "/api/runs?status=bogus",
        "/api/runs?limit=x",
        "/api/runs?since=yesterday-ish",
    ] {
        let r = server.get(bad);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["status"], 400, "{bad}: errors are JSON");
    }
}

#[test]
fn log_downloads_are_byte_exact_from_any_offset() {
    let (env, failed, _) = env_with_runs();
    let server = Server::start(&env, &[]);
    let base = format!("/api/runs/{failed}/stages/bytes/log");
    let out = server.get(&format!("{base}?stream=stdout"));
    assert_eq!(out.status, 200);
    assert_eq!(out.header("content-type"), Some("application/octet-stream"));
    let expected: &[u8] = b"caf\xc3\xa9 \xff\xfe end\n";
    assert_eq!(out.body, expected);
    assert_eq!(server.get(&base).body, expected, "stdout is the default");
    assert_eq!(
        server.get(&format!("{base}?stream=stderr")).body,
        b"warn \x80\n"
    );
    assert_eq!(
        server.get(&format!("{base}?stream=stdout&offset=5")).body,
        &expected[5..]
    );
    assert_eq!(
        server
            .get(&format!("{base}?stream=stdout&offset=4&limit=3"))
            .body,
        &expected[4..7]
    );
    assert_eq!(
        server.get(&format!("{base}?stream=stdout&offset=999")).body,
        b""
    );
    assert_eq!(server.get(&format!("{base}?stream=both")).status, 400);

    let tail = server
        .get(&format!("/api/runs/{failed}/stages/bytes/tail"))
        .json();
    let chunks = tail["chunks"].as_array().expect("chunks");
    let text: String = chunks
        .iter()
        .map(|c| c["text"].as_str().expect("text"))
        .collect();
    assert!(text.contains("café \u{FFFD}\u{FFFD} end"), "{text}");
    assert!(chunks.iter().any(|c| c["stream"] == "stderr"));
    assert_eq!(tail["ended"], true);
    assert_eq!(tail["earlier"], false);
    // A small page leaves the earlier chunks for "load earlier".
    let small = server
        .get(&format!("/api/runs/{failed}/stages/bytes/tail?max=1"))
        .json();
    assert_eq!(small["chunks"].as_array().expect("chunks").len(), 1);
    assert_eq!(small["earlier"], true);
    let before = small["from"].as_u64().expect("from");
    let earlier = server
        .get(&format!(
            "/api/runs/{failed}/stages/bytes/tail?before={before}"
        ))
        .json();
    assert_eq!(earlier["chunks"].as_array().expect("chunks").len(), 1);
    assert_ne!(earlier["chunks"][0]["stream"], small["chunks"][0]["stream"]);
}

#[test]
fn raw_files_and_junit_are_served_sandboxed() {
    let (env, failed, _) = env_with_runs();
    let server = Server::start(&env, &[]);
    let m = server.get(&format!("/api/runs/{failed}/files/manifest.json"));
    assert_eq!(m.status, 200);
    assert_eq!(
        m.body,
        std::fs::read(env.run_dir(&failed).join("manifest.json")).expect("read")
    );
    assert_eq!(
        m.header("content-security-policy"),
        Some("default-src 'none'; sandbox")
    );
    assert_eq!(m.header("x-content-type-options"), Some("nosniff"));
    let log = server.get(&format!(
        "/api/runs/{failed}/files/commands/01-bytes.ndjson"
    ));
    assert_eq!(
        log.body,
        std::fs::read(env.run_dir(&failed).join("commands/01-bytes.ndjson")).expect("read")
    );
    let junit = server.get(&format!("/api/runs/{failed}/junit.xml"));
    assert_eq!(junit.status, 200);
    assert!(
        junit
            .text()
            .contains("<testcase classname=\"mixed\" name=\"fails\""),
        "{}",
        junit.text()
    );
    assert_eq!(
        junit.text(),
        env.cli(["report", "junit", "--run", &failed]).stdout
    );
}

#[test]
fn unknown_things_are_404_and_no_path_leaves_the_run() {
    let (env, failed, _) = env_with_runs();
    std::fs::write(env.path().join("secret.txt"), "top secret").expect("write");
    let run_dir = env.run_dir(&failed);
    std::os::unix::fs::symlink(env.path().join("secret.txt"), run_dir.join("link.txt"))
        .expect("symlink");
    // A run directory that is a symlink to a directory outside `.runs`.
    let outside = env.path().join("elsewhere/run");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::copy(run_dir.join("manifest.json"), outside.join("manifest.json")).expect("copy");
    std::os::unix::fs::symlink(
        &outside,
        env.path()
            .join(".runs/0101/cli/2026-01-01T00-00-00-000Z-0000beef"),
    )
    .expect("symlink");
    let server = Server::start(&env, &[]);
    let missing = "2026-01-01T00-00-00-000Z-deadbeef";
    for path in [
        format!("/api/runs/{missing}"),
        format!("/api/runs/{missing}/stages"),
        format!("/api/runs/{missing}/events"),
        format!("/api/runs/{missing}/junit.xml"),
        format!("/api/runs/{missing}/files/manifest.json"),
        format!("/api/runs/{missing}/stages/bytes/log"),
        format!("/api/runs/{missing}/stages/bytes/tail"),
        format!("/api/runs/{missing}/stages/bytes/log/events"),
        format!("/api/runs/{failed}/stages/nope/log"),
        format!("/api/runs/{failed}/stages/never/log"),
        "/api/nothing".to_owned(),
        // Path escapes: `..`, encoded slashes, absolute paths, symlinks out.
        "/api/runs/..".to_owned(),
        "/api/runs/..%2F..%2Fsecret.txt".to_owned(),
        "/api/runs/%2E%2E/files/secret.txt".to_owned(),
        format!("/api/runs/{failed}/files/../../../../secret.txt"),
        format!("/api/runs/{failed}/files/..%2F..%2F..%2F..%2Fsecret.txt"),
        format!("/api/runs/{failed}/files/%2Fetc%2Fpasswd"),
        format!("/api/runs/{failed}/files//etc/passwd"),
        format!("/api/runs/{failed}/files/link.txt"),
        format!("/api/runs/{failed}/files/commands"),
        "/api/runs/2026-01-01T00-00-00-000Z-0000beef".to_owned(),
        "/api/runs/2026-01-01T00-00-00-000Z-0000beef/files/manifest.json".to_owned(),
    ] {
        let r = server.get(&path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["status"], 404, "{path}");
        assert!(!r.text().contains("top secret"), "{path}");
    }
    assert_eq!(
        server.get(&format!("/runs/{missing}")).status,
        404,
        "run page"
    );
    assert_eq!(server.get("/assets/../Cargo.toml").status, 404);
    assert_eq!(server.get("/assets/nope.js").status, 404);
    assert_eq!(http_post_status(&server, "/api/runs/nope/cancel"), 404);
}

fn http_post_status(server: &Server, path: &str) -> u16 {
    super::http::request(server.addr, "POST", path, &[]).status
}

#[test]
fn a_damaged_manifest_is_shown_unreadable_and_a_deleted_run_disappears() {
    let (env, failed, ok) = env_with_runs();
    let server = Server::start(&env, &[]);
    let listed = |id: &str| -> Option<Value> {
        server.get("/api/runs").json()["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .find(|r| r["run_id"] == id)
            .cloned()
    };
    // A run whose manifest is half written (a tool that does not write atomically, caught in
    // the middle), appearing while the server runs.
    let damaged = "2027-01-01T00-00-00-000Z-0badf00d";
    let dir = env.path().join(".runs/0101/cli").join(damaged);
    let text = std::fs::read_to_string(env.run_dir(&ok).join("manifest.json"))
        .expect("read")
        .replace(&ok, damaged);
    let ext = std::fs::read_to_string(env.run_dir(&ok).join("manifest.ext.json"))
        .map(|t| t.replace(&ok, damaged));
    std::fs::create_dir_all(&dir).expect("mkdir");
    if let Ok(ext) = &ext {
        std::fs::write(dir.join("manifest.ext.json"), ext).expect("sidecar");
    }
    std::fs::write(dir.join("manifest.json"), &text[..text.len() / 2]).expect("half");
    let ok = damaged.to_owned();
    let row = eventually(
        Duration::from_secs(15),
        "the run to show as unreadable",
        || listed(&ok).filter(|r| r["status"] == "unreadable"),
    );
    assert!(
        row["error"]
            .as_str()
            .expect("error")
            .contains("not a valid manifest"),
        "{row}"
    );
    let r = server.get(&format!("/api/runs/{ok}"));
    assert_eq!(r.status, 422);
    assert!(r.json()["error"]
        .as_str()
        .expect("message")
        .contains("not a valid manifest"));
    assert_eq!(
        server.get(&format!("/runs/{ok}")).status,
        200,
        "the page says so itself"
    );
    assert_eq!(
        server.get("/api/runs?status=unreadable").json()["runs"][0]["run_id"],
        ok.as_str()
    );

    std::fs::remove_dir_all(env.run_dir(&failed)).expect("delete");
    eventually(
        Duration::from_secs(15),
        "the deleted run to disappear",
        || listed(&failed).is_none().then_some(()),
    );
    assert_eq!(server.get(&format!("/api/runs/{failed}")).status, 404);

    // Repaired (written whole, atomically): readable again.
    std::fs::write(dir.join("manifest.tmp"), &text).expect("write");
    std::fs::rename(dir.join("manifest.tmp"), dir.join("manifest.json")).expect("rename");
    eventually(Duration::from_secs(15), "the repaired run", || {
        listed(&ok).filter(|r| r["status"] == "succeeded")
    });
}

#[test]
fn a_run_whose_runner_was_killed_is_listed_abandoned() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"long","stages":[{"kind":"command","id":"wait","command":"sleep 60"}]}]}"#,
    );
    let server = Server::start(&env, &[]);
    let runner = super::start_in_background(&env, "long");
    let run = super::run_of(&server, "long");
    let row = |server: &Server| -> Value {
        server.get("/api/runs?pipeline=long").json()["runs"][0].clone()
    };
    eventually(Duration::from_secs(10), "the stage to start", || {
        let v = server.get(&format!("/api/runs/{run}")).json();
        (v["commands"][0]["status"] == "running").then_some(())
    });
    let alive = row(&server);
    assert_eq!(alive["run_id"], run.as_str());
    assert_eq!(alive["status"], "in_progress");
    assert_eq!(alive["abandoned"], false, "its runner is alive: {alive}");

    crate::control_util::kill9(runner);
    crate::control_util::kill_leftovers(&run);
    let dead = eventually(Duration::from_secs(10), "the row to say abandoned", || {
        let r = row(&server);
        (r["abandoned"] == true).then_some(r)
    });
    assert_eq!(dead["run_id"], run.as_str());
    assert_eq!(dead["status"], "in_progress", "the record still says so");
    assert_eq!(
        server.get(&format!("/api/runs/{run}")).json()["activity"]["abandoned"],
        true,
        "the run object agrees"
    );
    // Finished runs are never abandoned.
    let (env2, failed, ok) = env_with_runs();
    let server2 = Server::start(&env2, &[]);
    for r in server2.get("/api/runs").json()["runs"]
        .as_array()
        .expect("runs")
    {
        assert!(r["run_id"] == failed.as_str() || r["run_id"] == ok.as_str());
        assert_eq!(r["abandoned"], false, "{r}");
    }
}

#[test]
fn a_sub_pipeline_stage_links_to_its_child_run() {
    let env = TestEnv::new().config(CONFIG);
    let parent = env.start("parent", &[]);
    assert_eq!(parent.code, 0, "{}", parent.stderr);
    let parent = parent.run_id();
    let server = Server::start(&env, &[]);
    // The child is a run of its own, listed with its parent.
    let children = server.get("/api/runs?pipeline=ok").json();
    let children = children["runs"].as_array().expect("runs");
    assert_eq!(children.len(), 1, "{children:?}");
    let child = children[0]["run_id"].as_str().expect("child id").to_owned();
    assert_ne!(child, parent);
    assert_eq!(children[0]["parent_run_id"], parent.as_str());
    assert_eq!(env.manifest(&child)["parent_run_id"], parent.as_str());
    // The parent's stage points at it; the child's page points back.
    let stages = server.get(&format!("/api/runs/{parent}/stages")).json();
    let nested = stages["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["id"] == "nested")
        .expect("the sub-pipeline stage")
        .clone();
    assert_eq!(nested["kind"], "subpipeline");
    assert_eq!(nested["status"], "succeeded");
    assert_eq!(nested["sub_run_id"], child.as_str());
    assert_eq!(stages["parent_run_id"], Value::Null);
    let back = server.get(&format!("/api/runs/{child}/stages")).json();
    assert_eq!(back["parent_run_id"], parent.as_str());
    assert_eq!(
        server.get(&format!("/api/runs/{child}")).json()["pipeline_id"],
        "ok"
    );
}

//! Dynamic plans on the dashboard, in the real browser of `browser.rs`: while a run's page is
//! open, its planner stage writes a plan patch; the stages it adds appear in the stage table
//! and the graph without a reload, each marked as added by the planner, and then run to the
//! end like the config's own.

use std::time::Duration;

use serde_json::json;

use super::browser::{browser, eval, save, stage, until, Driver, Profile};
use super::{run_of, start_in_background, Server};
use crate::harness::TestEnv;

/// `planner` waits for the test's `go` file, then adds two shards (after it, by default) and
/// a merge after both shards and `gate`; `gate` waits for the test's `release` file, so the
/// merge is still pending when the page is looked at.
const CONFIG: &str = r#"{"pipelines":[{"id":"grow","title":"Sharded check","concurrency":4,"stages":[
  {"kind":"command","id":"planner","title":"Plan the shards","command":"i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; cp patch.json \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\""},
  {"kind":"command","id":"gate","title":"Gate","dependsOn":[],"command":"i=0; while [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"}]}]}"#;

const PATCH: &str = r#"{"stages":[
  {"kind":"command","id":"shard-1","title":"Shard 1","command":"echo one"},
  {"kind":"command","id":"shard-2","title":"Shard 2","command":"echo two"},
  {"kind":"command","id":"merge","title":"Merge","command":"echo merged","dependsOn":["shard-1","shard-2","gate"]}]}"#;

const ADDED_ROWS: &str =
    "document.querySelectorAll('#stages tr[data-added-by=\"planner\"]').length";
const ADDED_NODES: &str =
    "document.querySelectorAll('#graph g.node.added[data-added-by=\"planner\"]').length";

#[test]
fn stages_a_planner_adds_appear_live_on_the_run_page() {
    let env = TestEnv::new().config(CONFIG);
    std::fs::write(env.path().join("patch.json"), PATCH).expect("patch");
    let server = Server::start(&env, &[]);
    let driver = Driver::start();
    let profile = Profile(tempfile::tempdir().expect("profile dir"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = browser(&driver, profile.0.path()).await;
        let base = server.url.trim_end_matches('/').to_owned();
        let mut runner = start_in_background(&env, "grow");
        let run = run_of(&server, "grow&status=in_progress");

        // The page is open while the planner runs: two stages, none added yet.
        c.goto(&format!("{base}/runs/{run}")).await.expect("run page");
        until(&c, "the live stream", Duration::from_secs(10), "document.getElementById('live').dataset.state === 'live'").await;
        until(&c, "the planner to run", Duration::from_secs(10), &format!("{} === 'running'", stage("planner", "status"))).await;
        assert_eq!(eval(&c, "document.querySelectorAll('#stages tbody tr').length").await, json!(2));
        assert_eq!(eval(&c, ADDED_ROWS).await, json!(0));
        assert_eq!(eval(&c, "document.getElementById('patches')").await, json!(null));
        eval(&c, "window.notReloaded = true").await;

        // The planner writes its patch and ends: the new stages appear as the update arrives.
        std::fs::write(env.path().join("go"), "").expect("go");
        until(&c, "the added stages' rows", Duration::from_secs(10), &format!("{ADDED_ROWS} === 3")).await;
        until(&c, "the added stages' nodes", Duration::from_secs(5), &format!("{ADDED_NODES} === 3")).await;
        assert_eq!(eval(&c, "window.notReloaded").await, json!(true), "no reload");
        let rows = eval(&c, "[...document.querySelectorAll('#stages tbody tr')].map((r) => [r.dataset.stage, r.dataset.addedBy || null])").await;
        assert_eq!(
            rows,
            json!([["planner", null], ["gate", null], ["shard-1", "planner"], ["shard-2", "planner"], ["merge", "planner"]])
        );
        // The mark says who added it, in the table and on the node; the run's facts count them.
        assert_eq!(
            eval(&c, "document.querySelector('#stages tr[data-stage=\"merge\"] .added')?.textContent").await,
            json!("added by planner")
        );
        let title = eval(&c, "document.querySelector('#stages tr[data-stage=\"merge\"] .added')?.title").await;
        assert!(title.as_str().is_some_and(|t| t.starts_with("added to the plan by stage planner at 20")), "{title}");
        assert_eq!(
            eval(&c, "document.querySelector('#graph g.node[data-stage=\"merge\"] .nadded')?.textContent").await,
            json!("+ planner")
        );
        assert_eq!(eval(&c, "document.getElementById('patches')?.textContent").await, json!("3 stages added by planner"));
        // The shards run at once; the merge waits for the gate: it is there before it can run.
        for s in ["shard-1", "shard-2"] {
            until(&c, s, Duration::from_secs(10), &format!("{} === 'succeeded'", stage(s, "status"))).await;
        }
        assert_eq!(eval(&c, &stage("merge", "status")).await, json!("pending"));
        save(&c, "run-page-plan-patch.png").await;

        // The added stages run like the config's own, still without a reload.
        std::fs::write(env.path().join("release"), "").expect("release");
        until(&c, "the run to succeed", Duration::from_secs(15), "document.getElementById('run').dataset.status === 'succeeded'").await;
        until(&c, "merge to succeed", Duration::from_secs(10), &format!("{} === 'succeeded'", stage("merge", "status"))).await;
        assert_eq!(eval(&c, "window.notReloaded").await, json!(true), "all of it without a reload");
        assert_eq!(runner.wait().expect("runner").code(), Some(0));
        let m = env.manifest(&run);
        assert_eq!(m["plan_patches"][0]["added_by"], "planner");
        c.close().await.expect("close the session");
    });
}

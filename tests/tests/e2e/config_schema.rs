//! `schemas/config.schema.json` agrees with the config loader: it defines exactly the keys
//! the loader knows (and no others, as `--strict`), it accepts every valid config (the
//! README's, one using every key), and on the bad-input catalogue it rejects exactly the
//! cases it can express, which the real binary rejects too (exit 2, one error line naming the
//! field). The cases only the runner can judge (graph, references, bytes a process cannot
//! take) are listed as such, and the schema is checked to let them through, so that a change
//! on either side shows up here.

use serde_json::Value;

use crate::harness::TestEnv;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/config.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema compiles")
}

/// The schema's errors for `config` (empty: valid).
fn schema_errors(v: &jsonschema::Validator, config: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(config).expect("catalogue configs are JSON");
    v.iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

/// Where each of the loader's key lists lives in the schema.
const POINTERS: &[(&str, &str)] = &[
    ("top", "/properties"),
    ("pipeline", "/definitions/pipeline/properties"),
    ("stage.command", "/definitions/commandStage/properties"),
    (
        "stage.subpipeline",
        "/definitions/subpipelineStage/properties",
    ),
    ("stage.approval", "/definitions/approvalStage/properties"),
    ("stage.loop", "/definitions/loopStage/properties"),
    ("stage.stage-set", "/definitions/stageSetRef/properties"),
    ("loop.build", "/definitions/loopBuild/properties"),
    ("retries", "/definitions/retries/oneOf/2/properties"),
    ("executor.local", "/definitions/executor/oneOf/1/properties"),
    ("executor.ray", "/definitions/executor/oneOf/2/properties"),
    ("delivery.bundle", "/definitions/deliveryBundle/properties"),
    ("delivery.git", "/definitions/deliveryGit/properties"),
    ("delivery.github", "/definitions/deliveryGithub/properties"),
];

#[test]
fn the_schema_defines_exactly_the_keys_the_loader_knows() {
    let schema = schema();
    let lists = codex_orchestrator::config::load::key_lists();
    assert_eq!(
        lists.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        POINTERS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "every key list of the loader has its place in the schema"
    );
    for ((name, keys), (_, pointer)) in lists.iter().zip(POINTERS) {
        let props = schema
            .pointer(pointer)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{name}: no object at {pointer}"));
        let mut in_schema: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut in_loader = keys.clone();
        in_schema.sort_unstable();
        in_loader.sort_unstable();
        assert_eq!(
            in_schema, in_loader,
            "{name}: schema {pointer} vs the loader"
        );
        // Closed like `--strict`: an unknown key is an error.
        let parent = pointer.trim_end_matches("/properties");
        assert_eq!(
            schema.pointer(&format!("{parent}/additionalProperties")),
            Some(&Value::Bool(false)),
            "{name}: {parent} must not allow other keys"
        );
    }
}

/// Every object with `properties` in the schema, as JSON pointers to them.
fn property_lists(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if o.get("properties").is_some_and(Value::is_object) {
                out.push(format!("{at}/properties"));
            }
            for (k, child) in o {
                let k = k.replace('~', "~0").replace('/', "~1");
                property_lists(child, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                property_lists(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The other direction of the test above: no object in the schema is left out of it. A new
/// nesting level in the schema must get its key list in the loader (and `key_lists`).
#[test]
fn every_object_of_the_schema_is_held_to_a_key_list() {
    let mut found = Vec::new();
    property_lists(&schema(), "", &mut found);
    found.sort_unstable();
    let mut held: Vec<String> = POINTERS.iter().map(|(_, p)| (*p).to_owned()).collect();
    held.sort_unstable();
    assert_eq!(found, held);
}

/// The sources of the config loader: every key list it checks keys against.
const LOADER_SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../orchestrator/src/config");

/// And from the loader's side: every key list the config loader declares (`const X_KEYS`) is
/// one `key_lists` returns, and no unknown-key check uses a list written in place, so a new
/// nesting level in the loader (a new stage kind, a new object field) cannot be left out of
/// the schema. Plan files and plan patches are other formats, with their own lists.
#[test]
fn every_key_list_of_the_loader_is_in_key_lists() {
    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("config sources") {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            if name.starts_with("plan_file") || name == "plan_patch.rs" {
                continue;
            }
            if path.is_dir() {
                sources(&path, out);
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                out.push((path.display().to_string(), text));
            }
        }
    }
    let mut files = Vec::new();
    sources(std::path::Path::new(LOADER_SOURCES), &mut files);
    let load = &files
        .iter()
        .find(|(p, _)| p.ends_with("/config/load.rs"))
        .expect("load.rs")
        .1;
    let start = load.find("pub fn key_lists()").expect("key_lists");
    let body = &load[start..start + load[start..].find("\n}\n").expect("its end")];
    let mut declared = 0;
    for (path, text) in &files {
        for line in text.lines() {
            let line = line.trim_start();
            let decl = [
                "const ",
                "pub(super) const ",
                "pub(crate) const ",
                "pub const ",
            ]
            .iter()
            .find_map(|p| line.strip_prefix(p));
            let Some(name) = decl.and_then(|d| d.split(':').next()) else {
                continue;
            };
            if name.ends_with("_KEYS") && line.contains("&[&str]") {
                declared += 1;
                assert!(
                    body.contains(name),
                    "{path}: `{name}` is a key list of the loader that key_lists() does not return (add it, and its place in the schema)"
                );
            }
            assert!(
                !(line.contains("unknown_keys(") && line.contains("&[\"")),
                "{path}: a key list written in place, not held to the schema: {line}"
            );
        }
    }
    assert!(
        declared >= 15,
        "the scan found the loader's key lists ({declared})"
    );
}

/// A config using every key the loader knows, each with a valid value.
const EVERY_KEY: &str = r#"{
  "$schema": "./schemas/config.schema.json",
  "version": 1, "description": "all keys", "metadata": {"team": "x"},
  "defaultPipeline": "p", "runtimeMode": "cli", "manifestExtensions": "sidecar",
  "durability": "batched", "maxConcurrentRuns": 4, "secrets": ["DEPLOY_KEY", "*_TOKEN"],
  "stageSets": {"checks": [{"kind": "command", "id": "lint", "command": "true"}]},
  "pipelines": [
    {"id": "p", "title": "P", "description": "d", "guardrailsRequired": false,
     "tags": ["a"], "metadata": {}, "plan": {}, "session": {}, "concurrency": 2,
     "vars": {"WHO": "w", "N": 3, "B": true}, "executor": {"kind": "local"},
     "maxWallClockMs": 600000, "maxDynamicStages": 10, "inputs": ["src/**", "Cargo.*"],
     "delivery": [
       {"kind": "bundle"},
       {"kind": "git", "remote": "origin", "branch": "co/${TASK}/${RUN_ID}", "message": "m"},
       {"kind": "github", "remote": "origin", "branch": "pr/${PIPELINE}", "message": "m",
        "base": "main", "title": "t", "body": "b", "draft": true, "waitForCi": true,
        "ciTimeoutMs": 60000, "checksGraceMs": 0}],
     "stages": [
       {"kind": "command", "id": "build", "title": "Build", "description": "d",
        "plan": {"runnable": true}, "tags": [], "metadata": {}, "session": {},
        "dependsOn": [], "onFailure": "continue", "locks": ["db"],
        "retries": {"count": 1, "delayMs": 10, "backoff": "exponential", "maxDelayMs": 100},
        "command": "true", "cwd": ".", "env": {"X": "1"}, "timeoutMs": 1000,
        "allowFailure": false, "summaryHint": "h", "executor": {"kind": "local"}},
       {"kind": "command", "id": "argv", "command": "printf", "args": ["%s", "a b"]},
       {"kind": "command", "id": "remote", "command": "true", "retries": 2,
        "executor": {"kind": "ray", "address": "http://127.0.0.1:8265", "numCpus": 1,
                     "numGpus": 0, "resources": {"tpu": 1}, "workingDir": ".",
                     "excludes": ["data/"], "env": {"Y": "2"}}},
       {"kind": "stage-set", "ref": "checks"},
       {"kind": "subpipeline", "id": "sub", "pipeline": "q", "optional": true},
       {"kind": "approval", "id": "gate", "prompt": "Ship?", "approvers": ["alice"],
        "timeoutMs": 60000, "onTimeout": "approve"},
       {"kind": "loop", "id": "fix", "title": "Fix", "description": "d", "plan": {},
        "tags": [], "metadata": {}, "session": {}, "dependsOn": ["gate"],
        "onFailure": "abort", "retries": 0, "locks": ["tree"],
        "build": {"command": "true", "cwd": ".", "env": {"Z": "1"}, "timeoutMs": 1000,
                  "summaryHint": "h"},
        "verify": "q", "maxIterations": 2, "maxWallClockMs": 60000,
        "stopWhenUnchanged": false},
       {"kind": "loop", "id": "again", "build": "true", "verify": "q"}]},
    {"id": "q", "stages": [{"kind": "command", "id": "a", "command": "true"}]}]
}"#;

#[test]
fn valid_configs_pass_both() {
    let v = validator();
    let mut configs: Vec<String> = vec![EVERY_KEY.to_owned()];
    // Every key the loader knows is used, so none of them is refused by a valid value.
    for (name, keys) in codex_orchestrator::config::load::key_lists() {
        for key in keys {
            assert!(
                EVERY_KEY.contains(&format!("\"{key}\":")),
                "{name}: `{key}` is not used by EVERY_KEY"
            );
        }
    }
    // The README's configs.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    for block in readme.split("```json\n").skip(1) {
        let body = &block[..block.find("\n```").expect("a closed block")];
        if serde_json::from_str::<Value>(body).is_ok_and(|c| c.get("pipelines").is_some()) {
            configs.push(body.to_owned());
        }
    }
    assert!(configs.len() > 1, "the README has configs");
    for config in configs {
        assert_eq!(schema_errors(&v, &config), Vec::<String>::new(), "{config}");
        let doc: Value = serde_json::from_str(&config).expect("JSON");
        let env = TestEnv::new().config(&config);
        for p in doc["pipelines"].as_array().expect("pipelines") {
            let id = p["id"].as_str().expect("id");
            // What a delivery needs of the machine (a git remote, `gh`) is not the file's:
            // the catalogue has that case.
            let out = env.cli(["start", id, "--strict", "--dry-run", "--no-deliver"]);
            assert_eq!(out.code, 0, "{id}: {}", out.stderr);
            assert!(!out.stderr.contains("warning"), "{id}: {}", out.stderr);
        }
    }
}

/// One stage in pipeline `p`.
fn stage(json: &str) -> String {
    format!(r#"{{"pipelines":[{{"id":"p","stages":[{json}]}}]}}"#)
}

/// A command stage `a` with extra fields.
fn command(extra: &str) -> String {
    stage(&format!(
        r#"{{"kind":"command","id":"a","command":"true"{extra}}}"#
    ))
}

/// An approval stage `gate` with extra fields.
fn approval(extra: &str) -> String {
    stage(&format!(
        r#"{{"kind":"approval","id":"gate","prompt":"Ship?"{extra}}}"#
    ))
}

/// Pipeline `p` with extra fields and one good stage.
fn pipeline(extra: &str) -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p"{extra},"stages":[{{"kind":"command","id":"a","command":"true"}}]}}]}}"#
    )
}

/// A Ray executor on stage `a` with extra fields.
fn ray(extra: &str) -> String {
    command(&format!(r#","executor":{{"kind":"ray"{extra}}}"#))
}

/// A loop stage `fix` with the given fields, and the pipeline `q` it may verify with.
fn looping(fields: &str) -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"loop","id":"fix"{fields}}}]}},{{"id":"q","stages":[{{"kind":"command","id":"c","command":"true"}}]}}]}}"#
    )
}

/// A loop stage `fix` verified by `q`, with `build` as given.
fn build(build: &str) -> String {
    looping(&format!(r#","verify":"q","build":{build}"#))
}

/// Pipeline `p` with `delivery` as given.
fn delivery(delivery: &str) -> String {
    pipeline(&format!(r#","delivery":{delivery}"#))
}

/// The bad-input catalogue (bad_input.rs and numbers.rs, as configs): the config, what the
/// runner's error names, and whether the schema can express the rule.
fn catalogue() -> Vec<(String, &'static str, bool)> {
    let s = |x: &str| x.to_owned();
    vec![
        // Types, required fields, enums, ranges: the schema says so too.
        (command(r#","timeoutMs":"soon""#), "field `timeoutMs`", true),
        (
            command(r#","allowFailure":"yes""#),
            "field `allowFailure`",
            true,
        ),
        (s(r#"{"pipelines":{"id":"p"}}"#), "field `pipelines`", true),
        (s(r#"{"stageSets":{}}"#), "field `pipelines`: missing", true),
        (s(r#"[]"#), "expected an object", true),
        (command(r#","env":{"X":[1]}"#), "field `env.X`", true),
        (
            stage(r#"{"kind":"command","id":"a"}"#),
            "field `command`: missing",
            true,
        ),
        (
            stage(r#"{"kind":"command","id":"a","command":"  "}"#),
            "field `command`: must not be empty",
            true,
        ),
        (
            stage(r#"{"id":"a","command":"true"}"#),
            "field `kind`: missing",
            true,
        ),
        (
            stage(r#"{"kind":"comand","id":"a","command":"true"}"#),
            "unknown kind `comand`",
            true,
        ),
        (
            stage(r#"{"kind":"command","command":"true"}"#),
            "field `id`: missing",
            true,
        ),
        (
            s(r#"{"pipelines":[{"id":"p","stages":[]}]}"#),
            "field `stages`: empty",
            true,
        ),
        (
            s(r#"{"pipelines":[{"stages":[]}]}"#),
            "field `id`: missing",
            true,
        ),
        (
            stage(r#"{"kind":"aproval","id":"gate","prompt":"Ship?"}"#),
            "unknown kind `aproval`",
            true,
        ),
        (
            approval(r#","onTimeout":"aprove""#),
            "field `onTimeout`",
            true,
        ),
        (
            approval(r#","approvers":"alice""#),
            "field `approvers`",
            true,
        ),
        (
            approval(r#","approvers":["alice",7]"#),
            "field `approvers`",
            true,
        ),
        (
            approval(r#","approvers":[]"#),
            "field `approvers`: empty",
            true,
        ),
        (
            approval(r#","approvers":["alice","alice"]"#),
            "listed twice",
            true,
        ),
        (approval(r#","timeoutMs":"10m""#), "field `timeoutMs`", true),
        (approval(r#","retries":2"#), "field `retries`", true),
        (
            stage(r#"{"kind":"approval","id":"gate"}"#),
            "field `prompt`: missing",
            true,
        ),
        (command(r#","locks":["db",1]"#), "field `locks`", true),
        (
            command(r#","locks":[".hidden"]"#),
            "is not a lock name",
            true,
        ),
        (command(r#","locks":["db","db"]"#), "listed twice", true),
        (
            pipeline(r#","maxWallClockMs":"30m""#),
            "field `maxWallClockMs`",
            true,
        ),
        (
            s(r#"{"maxConcurrentRuns":-1,"pipelines":[]}"#),
            "field `maxConcurrentRuns`",
            true,
        ),
        (
            command(r#","dependson":["x"]"#),
            "field `dependson`: unknown key (did you mean `dependsOn`?)",
            true,
        ),
        (
            pipeline(r#","stagez":1"#),
            "field `stagez`: unknown key",
            true,
        ),
        (
            s(r#"{"pipeline":[]}"#),
            "field `pipeline`: unknown key",
            true,
        ),
        (command(r#","env":{"A=B":"x"}"#), "field `env.A=B`", true),
        (command(r#","env":{"":"x"}"#), "field `env.`", true),
        (pipeline(r#","vars":{"1X":"y"}"#), "field `vars.1X`", true),
        (command(r#","dependsOn":"b""#), "field `dependsOn`", true),
        (command(r#","args":"-v""#), "field `args`", true),
        (command(r#","args":["-v",2]"#), "field `args[1]`", true),
        (command(r#","dependsOn":[1]"#), "field `dependsOn`", true),
        (
            command(r#","onFailure":"ignore""#),
            "field `onFailure`",
            true,
        ),
        (
            command(r#","retries":{"count":1,"backof":"fixed"}"#),
            "field `retries.backof`",
            true,
        ),
        (
            command(r#","retries":{"backoff":"linear"}"#),
            "field `retries.backoff`",
            true,
        ),
        (command(r#","retries":"3""#), "field `retries`", true),
        (
            command(r#","retries":{"count":-1}"#),
            "field `retries.count`: expected an integer >= 0",
            true,
        ),
        (command(r#","plan":[]"#), "field `plan`", true),
        (
            s(r#"{"runtimeMode":"turbo","pipelines":[]}"#),
            "field `runtimeMode`",
            true,
        ),
        (
            s(r#"{"durability":"fast","pipelines":[]}"#),
            "field `durability`",
            true,
        ),
        (
            s(r#"{"manifestExtensions":"both","pipelines":[]}"#),
            "field `manifestExtensions`",
            true,
        ),
        (
            s(r#"{"stageSets":{"x":{}},"pipelines":[]}"#),
            "stage set `x`",
            true,
        ),
        (
            s(r#"{"stageSets":{"x":[{"kind":"stage-set","ref":"y"}]},"pipelines":[]}"#),
            "one level only",
            true,
        ),
        (
            stage(r#"{"kind":"stage-set"}"#),
            "field `ref`: missing",
            true,
        ),
        (
            stage(r#"{"kind":"stage-set","ref":"x","id":"a"}"#),
            "field `id`: unknown key",
            true,
        ),
        (
            stage(r#"{"kind":"subpipeline","id":"s"}"#),
            "field `pipeline`: missing",
            true,
        ),
        (command(r#","executor":"ray""#), "field `executor`", true),
        (
            command(r#","executor":{"kind":"rya"}"#),
            "unknown executor `rya`",
            true,
        ),
        (
            command(r#","executor":{}"#),
            "field `executor.kind`: missing",
            true,
        ),
        (
            command(r#","executor":{"kind":"local","address":"http://h:1"}"#),
            "a local executor has no settings",
            true,
        ),
        (ray(r#","numCpus":-1"#), "numCpus", true),
        (ray(r#","resources":{"tpu":"one"}"#), "resources.tpu", true),
        (ray(r#","workingDir":"/abs""#), "workingDir", true),
        (ray(r#","address":"ftp://h:1""#), "address", true),
        (ray(r#","excludes":[1]"#), "excludes", true),
        (
            ray(r#","adress":"http://h:1""#),
            "did you mean `address`?",
            true,
        ),
        (
            s(r#"{"secrets":"GITHUB_TOKEN","pipelines":[]}"#),
            "field `secrets`",
            true,
        ),
        (
            s(r#"{"secrets":["*"],"pipelines":[]}"#),
            "field `secrets`",
            true,
        ),
        (
            s(r#"{"secrets":["X-Y"],"pipelines":[]}"#),
            "field `secrets`",
            true,
        ),
        (
            s(r#"{"secrets":[""],"pipelines":[]}"#),
            "field `secrets`",
            true,
        ),
        // Loop stages (loops.rs).
        (looping(r#","verify":"q""#), "field `build`: missing", true),
        (build("null"), "field `build`: missing", true),
        (build(r#""  ""#), "field `build`: must not be empty", true),
        (build("3"), "field `build`: expected a command", true),
        (
            build(r#"{"cwd":"."}"#),
            "field `build.command`: missing",
            true,
        ),
        (
            build(r#"{"command":"true","allowFailure":true}"#),
            "field `build.allowFailure`",
            true,
        ),
        (
            build(r#"{"command":"true","comand":"x"}"#),
            "field `build.comand`: unknown key (did you mean `command`?)",
            true,
        ),
        (
            build(r#"{"command":"true","args":["x"]}"#),
            "field `build.args`: unknown key",
            true,
        ),
        (
            build(r#"{"command":"true","timeoutMs":0}"#),
            "field `build.timeoutMs`",
            true,
        ),
        (
            build(r#"{"command":"true","env":{"A=B":"x"}}"#),
            "field `build.env.A=B`",
            true,
        ),
        (
            build(r#"{"command":"true","env":{"X":[]}}"#),
            "field `build.env.X`",
            true,
        ),
        (
            looping(r#","build":"true""#),
            "field `verify`: missing",
            true,
        ),
        (
            looping(r#","build":"true","verify":7"#),
            "field `verify`",
            true,
        ),
        (
            looping(r#","build":"true","verify":"q","maxIterations":0"#),
            "field `maxIterations`",
            true,
        ),
        (
            looping(r#","build":"true","verify":"q","stopWhenUnchanged":"yes""#),
            "field `stopWhenUnchanged`",
            true,
        ),
        (
            looping(r#","build":"true","verify":"q","maxIteration":3"#),
            "field `maxIteration`: unknown key (did you mean `maxIterations`?)",
            true,
        ),
        (
            looping(r#","build":"true","verify":"q","executor":{"kind":"local"}"#),
            "field `executor`: unknown key",
            true,
        ),
        (
            looping(r#","build":"true","verify":"q","command":"true""#),
            "field `command`: unknown key",
            true,
        ),
        // Deliveries (loops.rs, delivery.rs).
        (delivery(r#""bundle""#), "field `delivery`", true),
        (delivery("[1]"), "delivery `#1`: expected an object", true),
        (delivery("{}"), "delivery `#1`, field `kind`: missing", true),
        (
            delivery(r#"{"kind":"gitlab"}"#),
            "unknown delivery kind `gitlab`",
            true,
        ),
        (
            delivery(r#"[{"kind":"bundle"},{"kind":"git"}]"#),
            "delivery `#2`, field `remote`: missing",
            true,
        ),
        (
            delivery(r#"{"kind":"git","remote":" "}"#),
            "field `remote`: must not be empty",
            true,
        ),
        (
            delivery(r#"{"kind":"bundle","remote":"origin"}"#),
            "delivery `#1`, field `remote`: unknown key",
            true,
        ),
        (
            delivery(r#"{"kind":"git","remote":"origin","draft":true}"#),
            "field `draft`: unknown key",
            true,
        ),
        (
            delivery(r#"{"kind":"git","remote":"origin","branch":5}"#),
            "field `branch`",
            true,
        ),
        (
            delivery(r#"{"kind":"github","remote":"origin","draft":"yes"}"#),
            "field `draft`",
            true,
        ),
        (
            delivery(r#"{"kind":"github","remote":"origin","waitForCI":true}"#),
            "field `waitForCI`: unknown key (did you mean `waitForCi`?)",
            true,
        ),
        (
            delivery(r#"{"kind":"github","remote":"origin","ciTimeoutMs":"1h"}"#),
            "field `ciTimeoutMs`",
            true,
        ),
        (pipeline(r#","inputs":"src/**""#), "field `inputs`", true),
        (
            pipeline(r#","inputs":["src/**",1]"#),
            "field `inputs`",
            true,
        ),
        // Rules over several fields or the whole file: the runner's alone.
        (
            stage(
                r#"{"kind":"command","id":"a","command":"true"},{"kind":"command","id":"a","command":"true"}"#,
            ),
            "duplicate stage id",
            false,
        ),
        (
            s(
                r#"{"stageSets":{"checks":[]},"pipelines":[{"id":"p","stages":[{"kind":"stage-set","ref":"chekcs"}]}]}"#,
            ),
            "unknown stage set `chekcs`",
            false,
        ),
        (
            s(
                r#"{"stageSets":{"none":[]},"pipelines":[{"id":"p","stages":[{"kind":"stage-set","ref":"none"}]}]}"#,
            ),
            "field `stages`: empty",
            false,
        ),
        (
            stage(r#"{"kind":"subpipeline","id":"s","pipeline":"nope"}"#),
            "unknown pipeline `nope`",
            false,
        ),
        (
            s(
                r#"{"pipelines":[{"id":"p","stages":[{"kind":"subpipeline","id":"me","pipeline":"p"}]}]}"#,
            ),
            "sub-pipelines form a cycle",
            false,
        ),
        (
            command(r#","dependsOn":["ghost"]"#),
            "depends on `ghost`",
            false,
        ),
        (
            command(r#","dependsOn":["a"]"#),
            "cannot depend on itself",
            false,
        ),
        (
            stage(
                r#"{"kind":"command","id":"a","command":"true","dependsOn":["b"]},{"kind":"command","id":"b","command":"true","dependsOn":["a"]}"#,
            ),
            "in a cycle",
            false,
        ),
        (
            command(r#","cwd":"out/${NOPE_NOT_SET}""#),
            "undefined variable",
            false,
        ),
        (
            stage(r#"{"kind":"command","id":"a","command":"echo a\u0000b"}"#),
            "contains a NUL byte",
            false,
        ),
        (
            command(r#","env":{"A":"x\u0000y"}"#),
            "contains a NUL byte",
            false,
        ),
        (
            stage(r#"{"kind":"command","id":"se\u0001cond","command":"true"}"#),
            "contains control characters",
            false,
        ),
        (ray(r#","address":"http://""#), "address", false),
        (
            command(r#","cwd":"sub","executor":{"kind":"ray"}"#),
            "set `executor.workingDir` instead of `cwd`",
            false,
        ),
        (
            approval(r#","approvers":["alice"," alice"]"#),
            "listed twice",
            false,
        ),
        (
            command(r#","command":"echo twice""#),
            "duplicate key",
            false,
        ),
        (
            looping(r#","build":"true","verify":"nope""#),
            "field `verify`: unknown pipeline `nope`",
            false,
        ),
        (
            looping(r#","build":"true","verify":"p""#),
            "a loop's verify pipeline runs the loop again",
            false,
        ),
        (
            build(r#"{"command":"echo a\u0000b"}"#),
            "field `build.command`: contains a NUL byte",
            false,
        ),
        (
            delivery(r#"{"kind":"git","remote":"origin","branch":"co/${NOPE}"}"#),
            "field `branch`: undefined variable `${NOPE}`",
            false,
        ),
        // What a delivery needs of the machine: the test's directory is no git work tree.
        (
            delivery(r#"{"kind":"git","remote":"origin"}"#),
            "field `remote`",
            false,
        ),
        (pipeline(r#","inputs":["src/[a"]"#), "is not a glob", false),
    ]
}

#[test]
fn the_schema_rejects_what_it_can_express_of_the_bad_input_catalogue() {
    let v = validator();
    for (config, names, schema_rejects) in catalogue() {
        let env = TestEnv::new().config(&config);
        let out = env.cli(["start", "p", "--strict", "--dry-run"]);
        assert_eq!(out.code, 2, "{config}\n{}", out.stderr);
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{config}\n{}", out.stderr);
        assert!(
            errors[0].contains(names),
            "{config}: expected `{names}` in\n{}",
            errors[0]
        );
        assert!(!env.runs_exists());
        let found = if config.contains("\"command\":\"true\",\"command\"") {
            // Duplicate keys are the parser's rule: a JSON value has none left to check.
            Vec::new()
        } else {
            schema_errors(&v, &config)
        };
        assert_eq!(
            !found.is_empty(),
            schema_rejects,
            "{config}: the runner says {}; the schema says {found:?}",
            errors[0]
        );
    }
}

/// Builds a config around one value.
type Make = fn(&str) -> String;

/// Every numeric field against the values of numbers.rs: the schema and the runner agree on
/// each (valid or not). `1.0` is left out: JSON Schema cannot tell it from `1`, the runner
/// wants an integer written as one.
#[test]
fn numbers_agree() {
    let v = validator();
    let fields: [(&str, Make); 17] = [
        ("timeoutMs", |x| command(&format!(r#","timeoutMs":{x}"#))),
        ("concurrency", |x| {
            pipeline(&format!(r#","concurrency":{x}"#))
        }),
        ("maxWallClockMs", |x| {
            pipeline(&format!(r#","maxWallClockMs":{x}"#))
        }),
        ("maxDynamicStages", |x| {
            pipeline(&format!(r#","maxDynamicStages":{x}"#))
        }),
        ("maxConcurrentRuns", |x| {
            format!(
                r#"{{"maxConcurrentRuns":{x},"pipelines":[{{"id":"p","stages":[{{"kind":"command","id":"a","command":"true"}}]}}]}}"#
            )
        }),
        ("retries", |x| command(&format!(r#","retries":{x}"#))),
        ("retries.count", |x| {
            command(&format!(r#","retries":{{"count":{x}}}"#))
        }),
        ("retries.delayMs", |x| {
            command(&format!(r#","retries":{{"delayMs":{x}}}"#))
        }),
        ("retries.maxDelayMs", |x| {
            command(&format!(r#","retries":{{"maxDelayMs":{x}}}"#))
        }),
        ("approval timeoutMs", |x| {
            approval(&format!(r#","timeoutMs":{x}"#))
        }),
        ("numCpus", |x| ray(&format!(r#","numCpus":{x}"#))),
        ("resources", |x| {
            ray(&format!(r#","resources":{{"r":{x}}}"#))
        }),
        ("loop maxIterations", |x| {
            looping(&format!(
                r#","build":"true","verify":"q","maxIterations":{x}"#
            ))
        }),
        ("loop maxWallClockMs", |x| {
            looping(&format!(
                r#","build":"true","verify":"q","maxWallClockMs":{x}"#
            ))
        }),
        ("build.timeoutMs", |x| {
            build(&format!(r#"{{"command":"true","timeoutMs":{x}}}"#))
        }),
        ("delivery ciTimeoutMs", |x| {
            delivery(&format!(
                r#"{{"kind":"github","remote":"origin","ciTimeoutMs":{x}}}"#
            ))
        }),
        ("delivery checksGraceMs", |x| {
            delivery(&format!(
                r#"{{"kind":"github","remote":"origin","checksGraceMs":{x}}}"#
            ))
        }),
    ];
    let values = [
        "0",
        "1",
        "-1",
        "1.5",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "1e300",
        "\"1\"",
        "true",
        "null",
    ];
    let mut checked = 0;
    for (field, make) in fields {
        for x in values {
            let config = make(x);
            let env = TestEnv::new().config(&config);
            // A valid github delivery needs a remote and `gh`: the file is what is checked.
            let out = env.cli(["start", "p", "--strict", "--dry-run", "--no-deliver"]);
            assert!(
                out.code == 0 || out.code == 2,
                "{field} = {x}: {}",
                out.stderr
            );
            let found = schema_errors(&v, &config);
            assert_eq!(
                found.is_empty(),
                out.code == 0,
                "{field} = {x}: the runner says {:?}; the schema says {found:?}",
                out.stderr.trim()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 17 * 11);
}

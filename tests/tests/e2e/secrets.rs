//! Secrets redaction (`secrets` in the config, `--secret`): a secret's value never reaches a
//! file of the run, the JUnit report or the runner's own output, however the stage prints it
//! (whole, split across reads or across a 64 KiB chunk, inside binary output, on stderr of a
//! failing stage); the count of masks is recorded per stage; the stage still gets the value.

use std::path::Path;

use exec::logread::{copy_stream, Stream};
use sha2::Digest;

use crate::harness::{merged, TestEnv};

const TOKEN: &str = "tok-Se3cret-Value-42";
const KEY: &str = "key-9Hidden-XYZ";
const SHORT: &str = "abc";

/// Stage ids and the masks each must make.
const STAGES: &[(&str, u64)] = &[
    ("whole", 2),
    ("trickle", 1),
    ("boundary", 1),
    ("binary", 1),
    ("short", 0),
    ("real", 0),
    ("fails", 1),
];

fn config() -> String {
    // 65 530 bytes of filler put the token across the 64 KiB read buffer's end; `trickle`
    // prints the token in two writes 300 ms apart (two chunk events without redaction);
    // `real` proves the stage got the real value (its sha256 is compared by the test).
    r#"{"secrets": ["API_TOKEN", "*_KEY"], "pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"whole","command":"echo \"token=$API_TOKEN\"; echo \"key: $DEPLOY_KEY\" >&2"},
      {"kind":"command","id":"trickle","command":"printf '%s' \"$API_TOKEN\" | cut -c1-9 | tr -d '\\n'; sleep 0.3; printf '%s\\n' \"$API_TOKEN\" | cut -c10-"},
      {"kind":"command","id":"boundary","command":"head -c 65530 /dev/zero | tr '\\0' a; printf '%s' \"$API_TOKEN\"; echo end"},
      {"kind":"command","id":"binary","command":"printf '\\377\\376\\000'; printf '%s' \"$API_TOKEN\"; printf '\\000\\377\\n'"},
      {"kind":"command","id":"short","command":"echo \"short=$SHORT_VALUE\""},
      {"kind":"command","id":"real","command":"printf '%s' \"$API_TOKEN\" | sha256sum"},
      {"kind":"command","id":"fails","command":"echo \"fatal: bad credentials $API_TOKEN\" >&2; exit 3"}
    ]}]}"#
        .to_owned()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The bytes of one stream of a stage log, decoded (base64 chunks included).
fn stream(log: &Path, which: Stream) -> Vec<u8> {
    let mut out = Vec::new();
    copy_stream(log, which, 0, None, &mut out).expect("read log");
    out
}

#[test]
fn a_secret_never_reaches_a_file_of_the_run_and_each_mask_is_counted() {
    let env = TestEnv::new()
        .config(&config())
        .env("API_TOKEN", TOKEN)
        .env("DEPLOY_KEY", KEY)
        .env("SHORT_VALUE", SHORT);
    let junit = env.path().join("junit.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    // Text mode: the progress lines and the failure output are checked too.
    let out = env.cli([
        "start",
        "p",
        "--secret",
        "SHORT_VALUE",
        "--junit",
        &junit_arg,
        "--failure-output",
        "full",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_id = env.only_run_id();
    let dir = env.run_dir(&run_id);
    let status_text = env.cli(["status", "--run", &run_id]);
    let status_json = env.cli(["status", "--run", &run_id, "--format", "json"]);
    let logs = env.cli(["logs", &run_id, "fails", "--stream", "stderr"]);
    assert!(
        logs.stdout.contains("bad credentials ***"),
        "{}",
        logs.stdout
    );

    // Not one byte of a value anywhere: every file of `.runs`, the JUnit report, what the
    // runner and the status verbs printed.
    let mut checked = crate::harness::files_under(&env.path().join(".runs"));
    checked.push(junit.clone());
    assert!(checked.len() > 10, "{checked:?}");
    for f in &checked {
        let bytes = std::fs::read(f).expect("read");
        for value in [TOKEN, KEY] {
            assert!(!contains(&bytes, value), "{} holds a secret", f.display());
        }
    }
    for (what, text) in [
        ("start stdout", &out.stdout),
        ("start stderr", &out.stderr),
        ("status", &status_text.stdout),
        ("status json", &status_json.stdout),
        ("logs", &logs.stdout),
    ] {
        for value in [TOKEN, KEY] {
            assert!(!text.contains(value), "{what} shows a secret:\n{text}");
        }
    }
    assert!(
        out.stderr.contains("fatal: bad credentials ***"),
        "{}",
        out.stderr
    );

    // Decoded, the logs hold the masks where the values were (base64 chunks too), and nothing
    // else changed.
    let log = |n: usize, id: &str| dir.join(format!("commands/{n:02}-{id}.ndjson"));
    assert_eq!(stream(&log(1, "whole"), Stream::Stdout), b"token=***\n");
    assert_eq!(stream(&log(1, "whole"), Stream::Stderr), b"key: ***\n");
    assert_eq!(stream(&log(2, "trickle"), Stream::Stdout), b"***\n");
    let boundary = stream(&log(3, "boundary"), Stream::Stdout);
    assert_eq!(boundary.len(), 65_530 + 3 + 4);
    assert!(boundary.ends_with(b"a***end\n"));
    assert_eq!(
        stream(&log(4, "binary"), Stream::Stdout),
        b"\xff\xfe\0***\0\xff\n"
    );
    let binary_log = std::fs::read_to_string(log(4, "binary")).expect("log");
    assert!(
        binary_log.contains(r#""encoding":"base64""#),
        "{binary_log}"
    );
    // Shorter than 4 bytes: not a secret worth masking (documented).
    assert_eq!(stream(&log(5, "short"), Stream::Stdout), b"short=abc\n");
    // The stage itself got the real value.
    let digest = format!("{:x}", sha2::Sha256::digest(TOKEN.as_bytes()));
    let real = String::from_utf8(stream(&log(6, "real"), Stream::Stdout)).expect("utf-8");
    assert!(real.starts_with(&digest), "{real}");

    // The counts, per stage, in the sidecar; the failing stage's summary and error file say
    // where the mask is.
    let m = merged(&dir.join("manifest.json"));
    let commands = m["commands"].as_array().expect("commands");
    for (i, (id, masks)) in STAGES.iter().enumerate() {
        assert_eq!(commands[i]["id"], *id);
        assert_eq!(commands[i]["redactions"], *masks, "stage {id}");
    }
    let main = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    assert!(
        !main.contains("redactions"),
        "an extension field in the peer's file"
    );
    let fails = &commands[6];
    assert_eq!(
        fails["summary"],
        "Exited with code 3 — fatal: bad credentials ***"
    );
    let error_file = env
        .path()
        .join(fails["error_file"].as_str().expect("error file"));
    let error_text = std::fs::read_to_string(error_file).expect("error file");
    assert!(error_text.contains("bad credentials ***"), "{error_text}");
    let junit_text = std::fs::read_to_string(&junit).expect("junit");
    assert!(junit_text.contains("bad credentials ***"), "{junit_text}");
}

#[test]
fn without_secrets_nothing_is_masked_or_counted() {
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"echo \"$API_TOKEN\""}]}]}"#)
        .env("API_TOKEN", TOKEN);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dir = env.run_dir(&out.run_id());
    let log = dir.join("commands/01-a.ndjson");
    assert_eq!(
        stream(&log, Stream::Stdout),
        format!("{TOKEN}\n").as_bytes()
    );
    let m = merged(&dir.join("manifest.json"));
    assert_eq!(m["commands"][0].get("redactions"), None);
}

#[test]
fn a_secret_named_on_the_command_line_or_a_variable_is_masked_in_the_record() {
    // `--var` values are recorded in the manifest (`variables`): a secret one is masked there.
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"echo \"$MY_PASS\"; echo \"$OTHER\""}]}]}"#,
    );
    let out = env.start(
        "p",
        &[
            "--secret",
            "MY_*",
            "--var",
            &format!("MY_PASS={TOKEN}"),
            "--var",
            "OTHER=plain-value",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dir = env.run_dir(&out.run_id());
    for f in crate::harness::files_under(&env.path().join(".runs")) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(!contains(&bytes, TOKEN), "{} holds the secret", f.display());
    }
    let log = dir.join("commands/01-a.ndjson");
    assert_eq!(stream(&log, Stream::Stdout), b"***\nplain-value\n");
    let m = merged(&dir.join("manifest.json"));
    assert_eq!(m["commands"][0]["redactions"], 1);
    assert_eq!(m["variables"]["MY_PASS"], "***");
    assert_eq!(m["variables"]["OTHER"], "plain-value");
}

#[test]
fn bad_secret_names_are_config_errors_and_nothing_is_written() {
    for (secrets, want) in [
        (
            r#""API_TOKEN""#,
            "expected an array of variable names, found a string",
        ),
        (
            r#"["GITHUB TOKEN"]"#,
            "`GITHUB TOKEN` is not a variable name or pattern",
        ),
        (r#"["*"]"#, "would make every variable secret"),
        (r#"[""]"#, "an empty name"),
        (r#"[3]"#, "expected variable names (strings)"),
    ] {
        let env = TestEnv::new().config(&format!(
            r#"{{"secrets": {secrets}, "pipelines":[{{"id":"p","stages":[{{"kind":"command","id":"a","command":"true"}}]}}]}}"#
        ));
        let out = env.start("p", &[]);
        assert_eq!(out.code, 2, "{secrets}: {}", out.stderr);
        let line = out.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.starts_with("error:"), "{line}");
        assert!(line.contains("codex.orchestrator.json"), "{line}");
        assert!(line.contains("field `secrets`"), "{line}");
        assert!(line.contains(want), "{secrets}: {line}");
        assert!(!env.runs_exists(), "{secrets}: something was written");
    }
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#,
    );
    let out = env.start("p", &["--secret", "A-B"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("error: --secret: `A-B`"),
        "{}",
        out.stderr
    );
    assert!(!env.runs_exists());
}

/// The record of a stage with secrets validates against our published schemas.
#[test]
fn the_redaction_count_is_a_documented_extension_field() {
    let schema = crate::harness::ext_schema();
    let field = &schema.pointer("/properties/commands/items/properties/redactions");
    assert!(field.is_some_and(|f| f["type"] == "integer"), "{schema}");
}

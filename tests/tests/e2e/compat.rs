//! The compatibility suite: the peer's own shipped `codex.orchestrator.json`, run by the peer
//! and by us in two identical scratch git repositories, side by side. For `docs-review`,
//! `implementation-gate`, `diagnostics`, `docs-relevance-advisory` and `frontend-testing`:
//! the same exit code, status, `status_detail`, stage statuses, stage output (byte for byte,
//! paths normalised) and summaries, and the same files in the run directory (apart from the
//! documented ones below); every record of ours validates against the peer's schema as
//! published. The same again for a repository without a config (both fall back to the
//! package's). Summaries: the same head (`Exited with code N`, ...); the excerpt after it is
//! taken from the end of the output by design (README, "Deliberate differences"), so ours is
//! checked to be that rule applied to the peer's own output.
//!
//! The peer finds its package as its own install directory; we find the same directory through
//! `node_modules/@kbediako/codex-orchestrator` in a parent of the repository (a symlink to the
//! installed peer, as a linked install would have it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::peer::{peer, run, Peer};

/// The pipelines the issue names.
const PIPELINES: [&str; 5] = [
    "docs-review",
    "implementation-gate",
    "diagnostics",
    "docs-relevance-advisory",
    "frontend-testing",
];

/// Run-directory entries only the peer writes (its memory snapshots, privacy log and auto-scout
/// evidence: README, "Deliberate differences").
const PEER_ONLY: &[&str] = &["memory", "privacy-decisions.ndjson", "auto-scout.json"];
/// Run-directory entries only we write (README, "Run layout").
const OURS_ONLY: &[&str] = &["manifest.ext.json", "run.lock"];

/// A scratch git repository with one commit, holding `config` (if any) as its config.
fn scratch_repo(dir: &Path, config: Option<&Path>) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("README.md"), "# scratch\n").expect("write");
    if let Some(c) = config {
        std::fs::copy(c, dir.join("codex.orchestrator.json")).expect("copy config");
    }
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=compat",
            "-c",
            "user.email=compat@example.invalid",
            "commit",
            "-q",
            "-m",
            "scratch",
        ],
    ] {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    }
}

/// Two identical repositories, `<tmp>/peer/repo` and `<tmp>/ours/repo` (paths of the same
/// length, so summaries cut at 240 characters cut at the same place), and the package linked
/// into `<tmp>/node_modules`.
struct Pair {
    tmp: tempfile::TempDir,
}

impl Pair {
    fn new(p: &Peer, with_config: bool) -> Pair {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = p.root.join("codex.orchestrator.json");
        for who in ["peer", "ours"] {
            scratch_repo(
                &tmp.path().join(who).join("repo"),
                with_config.then_some(&*config),
            );
        }
        let link = tmp.path().join("node_modules/@kbediako");
        std::fs::create_dir_all(&link).expect("mkdir");
        std::os::unix::fs::symlink(&p.root, link.join("codex-orchestrator")).expect("symlink");
        Pair { tmp }
    }

    fn repo(&self, who: &str) -> PathBuf {
        self.tmp.path().join(who).join("repo")
    }
}

/// What one run left, in comparable form.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: i32,
    status: Value,
    status_detail: Value,
    /// (id, status, summary head) per stage: the summary up to ` — `, or `output` when the
    /// summary is an excerpt of successful output.
    stages: Vec<(String, Value, Value)>,
    /// Files of the run directory, relative, without the documented one-sided ones.
    files: BTreeSet<String>,
}

/// One stage as recorded: its summary (normalised) and its output (from its log, as written,
/// and normalised).
struct StageRecord {
    summary: Option<String>,
    raw: (Vec<u8>, Vec<u8>),
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// What the run's paths normalise to.
    norm: Box<dyn Fn(&str) -> String>,
}

fn files(dir: &Path, base: &Path, skip: &[&str], out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).expect("read run dir").flatten() {
        let p = e.path();
        let rel = p
            .strip_prefix(base)
            .expect("inside")
            .to_string_lossy()
            .into_owned();
        if skip.contains(&rel.as_str()) {
            continue;
        }
        if p.is_dir() {
            files(&p, base, skip, out);
        } else {
            out.insert(rel);
        }
    }
}

/// Replaces what differs between the two runs by construction: the repo path, the temp dir
/// (`HOME`), the run id, and the timestamps in npm's log file names.
fn normalise(s: &str, repo: &Path, tmp: &Path, run_id: &str) -> String {
    let s = s
        .replace(&repo.to_string_lossy().to_string(), "[REPO]")
        .replace(&tmp.to_string_lossy().to_string(), "[TMP]")
        .replace(run_id, "[RUN_ID]");
    // `2026-12-01T21_05_17_212Z` (npm's debug log names).
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    while i < b.len() {
        if i + 24 <= b.len()
            && digits(i..i + 4)
            && b[i + 10] == b'T'
            && b[i + 13] == b'_'
            && b[i + 23] == b'Z'
            && digits(i + 20..i + 23)
        {
            out.push_str("[NPM_TS]");
            i += 24;
        } else {
            let c = s[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The summary's head: what precedes ` — ` in a failure summary, `output` for an excerpt of
/// successful output, the whole summary otherwise (`Command completed with code 0`).
fn head(summary: &str) -> String {
    let failure = [
        "Exited with code",
        "Timed out after",
        "Terminated with signal",
    ];
    if failure.iter().any(|f| summary.starts_with(f)) {
        return summary.split(" — ").next().unwrap_or(summary).to_owned();
    }
    if summary == "Command completed with code 0" {
        summary.to_owned()
    } else {
        "output".to_owned()
    }
}

/// Our summary rule (exec/src/summary.rs) applied to a stage's output, given the head.
fn our_rule(head_text: &str, stdout: &[u8], stderr: &[u8]) -> String {
    let excerpt = |b: &[u8]| exec::text::last_line(&exec::text::clean(b), 240);
    match head_text {
        "output" => [stdout, stderr]
            .into_iter()
            .map(excerpt)
            .find(|e| !e.is_empty())
            .unwrap_or_default(),
        h if h == "Command completed with code 0" => h.to_owned(),
        h => match excerpt(stderr) {
            e if e.is_empty() => h.to_owned(),
            e => format!("{h} — {e}"),
        },
    }
}

fn outcome(
    repo: &Path,
    tmp: &Path,
    task: &str,
    code: i32,
    skip: &[&str],
) -> (Outcome, Vec<StageRecord>, PathBuf) {
    let cli = repo.join(".runs").join(task).join("cli");
    let run_id = std::fs::read_dir(&cli)
        .unwrap_or_else(|e| panic!("no run under {}: {e}", cli.display()))
        .flatten()
        .next()
        .expect("one run")
        .file_name()
        .to_string_lossy()
        .into_owned();
    let dir = cli.join(&run_id);
    let m = crate::harness::merged(&dir.join("manifest.json"));
    let (repo_c, tmp_c, id_c) = (repo.to_owned(), tmp.to_owned(), run_id.clone());
    let norm = move |s: &str| normalise(s, &repo_c, &tmp_c, &id_c);
    let mut stages = Vec::new();
    let mut records = Vec::new();
    for c in m["commands"].as_array().expect("commands") {
        let summary = c["summary"].as_str().map(&norm);
        stages.push((
            c["id"].as_str().expect("id").to_owned(),
            c["status"].clone(),
            summary
                .as_deref()
                .map_or(Value::Null, |s| Value::String(head(s))),
        ));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(log) = c["log_path"].as_str() {
            let text = std::fs::read(repo.join(log)).unwrap_or_default();
            for line in text.split(|b| *b == b'\n') {
                if let Some(chunk) = exec::logread::parse_chunk(line) {
                    match chunk.stream {
                        exec::logread::Stream::Stdout => stdout.extend(chunk.data),
                        exec::logread::Stream::Stderr => stderr.extend(chunk.data),
                    }
                }
            }
        }
        let n = |b: &[u8]| norm(&String::from_utf8_lossy(b)).into_bytes();
        records.push(StageRecord {
            summary,
            stdout: n(&stdout),
            stderr: n(&stderr),
            raw: (stdout, stderr),
            norm: Box::new(norm.clone()),
        });
    }
    let mut set = BTreeSet::new();
    files(&dir, &dir, skip, &mut set);
    (
        Outcome {
            code,
            status: m["status"].clone(),
            status_detail: m["status_detail"].clone(),
            stages,
            files: set,
        },
        records,
        dir,
    )
}

/// Runs `pipeline` with both binaries and compares what they left.
fn compare(p: &Peer, pair: &Pair, pipeline: &str) {
    let task = format!("c-{pipeline}");
    let args = ["start", pipeline, "--task", task.as_str()];
    let tmp = pair.tmp.path();
    let theirs = run(&p.bin, &pair.repo("peer"), tmp, &args, &[]);
    let ours = run(
        Path::new(crate::harness::BIN),
        &pair.repo("ours"),
        tmp,
        &args,
        &[],
    );
    let (peer_out, peer_stages, _) =
        outcome(&pair.repo("peer"), tmp, &task, theirs.code, PEER_ONLY);
    let (our_out, our_stages, our_dir) =
        outcome(&pair.repo("ours"), tmp, &task, ours.code, OURS_ONLY);
    let context = format!(
        "ours stderr:\n{}\npeer stderr:\n{}",
        ours.stderr, theirs.stderr
    );
    assert_eq!(
        our_out, peer_out,
        "{pipeline}: ours (left) and the peer's (right) differ\n{context}"
    );
    for (i, (mine, theirs)) in our_stages.iter().zip(&peer_stages).enumerate() {
        let id = &our_out.stages[i].0;
        assert_eq!(
            String::from_utf8_lossy(&mine.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{pipeline}/{id}: stdout"
        );
        assert_eq!(
            String::from_utf8_lossy(&mine.stderr),
            String::from_utf8_lossy(&theirs.stderr),
            "{pipeline}/{id}: stderr"
        );
        // The excerpt is ours by design (issue 18: the end of the output, not its start);
        // applied to the peer's own output it gives exactly our summary.
        if let (Some(summary), Some(peer_summary)) = (&mine.summary, &theirs.summary) {
            // On the output as written (paths of the same length on both sides, so a cut at
            // 240 characters falls at the same place), then normalised.
            let expected =
                (theirs.norm)(&our_rule(&head(peer_summary), &theirs.raw.0, &theirs.raw.1));
            assert_eq!(
                summary, &expected,
                "{pipeline}/{id}: summary (peer: {peer_summary})"
            );
        }
    }
    crate::harness::assert_valid_record_files(&our_dir);
}

#[test]
fn the_peers_own_pipelines_run_alike() {
    let Some(p) = peer("compat::the_peers_own_pipelines_run_alike") else {
        return;
    };
    let pair = Pair::new(&p, true);
    for pipeline in PIPELINES {
        compare(&p, &pair, pipeline);
    }
}

#[test]
fn without_a_repo_config_both_use_the_packages() {
    let Some(p) = peer("compat::without_a_repo_config_both_use_the_packages") else {
        return;
    };
    let pair = Pair::new(&p, false);
    for pipeline in ["docs-review", "docs-relevance-advisory"] {
        compare(&p, &pair, pipeline);
    }
}

//! Shell semantics: a stage's command reaches `sh -c` exactly as written; runner variables
//! (`--var`, pipeline `vars`) reach it through the environment; `env` values are literal;
//! only `cwd` is expanded by the runner. Each test reads what the shell itself printed.

use crate::harness::TestEnv;

/// Runs pipeline `p` of `config` (one stage writing `out.txt`) and returns `out.txt`.
fn shell_output(env: &TestEnv, extra: &[&str]) -> String {
    let out = env.start("p", extra);
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    std::fs::read_to_string(env.path().join("out.txt")).expect("the stage wrote out.txt")
}

fn one_stage(command: &str, env_json: &str) -> String {
    let stage = serde_json::json!({"kind": "command", "id": "s", "command": command});
    let mut stage = stage;
    if !env_json.is_empty() {
        stage["env"] = serde_json::from_str(env_json).expect("env json");
    }
    serde_json::json!({"pipelines": [{"id": "p", "stages": [stage]}]}).to_string()
}

#[test]
fn loop_variables_are_the_shells() {
    // The caller's `f` must not replace the loop's: the runner does not substitute.
    let env = TestEnv::new()
        .config(&one_stage(
            "for f in a b; do echo item-${f}; done > out.txt",
            "",
        ))
        .env("f", "OUTER");
    assert_eq!(shell_output(&env, &[]), "item-a\nitem-b\n");
}

#[test]
fn a_local_assignment_wins_over_a_caller_variable_of_the_same_name() {
    let env = TestEnv::new()
        .config(&one_stage("FOO=1; echo ${FOO} $FOO > out.txt", ""))
        .env("FOO", "caller");
    assert_eq!(shell_output(&env, &[]), "1 1\n");
}

#[test]
fn double_dollar_is_the_shells_pid() {
    let env = TestEnv::new().config(&one_stage("echo $$ > out.txt", ""));
    let text = shell_output(&env, &[]);
    let pid: u32 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a pid: {text:?}"));
    assert!(pid > 1, "{text}");
}

#[test]
fn parameter_expansions_and_undefined_names_are_the_shells() {
    // An undefined name is empty, as in any shell; no "undefined variable" error from us.
    let env = TestEnv::new().config(&one_stage(
        "X=abc.txt; echo ${NOPE_X:-dflt} ${#X} ${X%.txt} [${NOPE_UNDEFINED}] > out.txt",
        "",
    ));
    assert_eq!(shell_output(&env, &[]), "dflt 7 abc []\n");
}

#[test]
fn stage_env_values_are_literal_and_seen_by_the_shell() {
    let env = TestEnv::new()
        .config(&one_stage(
            "echo ${MY_VAR} \"$REF\" > out.txt",
            r#"{"MY_VAR":"mine","REF":"${HOME}/x $$"}"#,
        ))
        .env("MY_VAR", "caller");
    assert_eq!(shell_output(&env, &[]), "mine ${HOME}/x $$\n");
}

#[test]
fn runner_variables_reach_the_shell_through_the_environment() {
    // Order: the run's CODEX_ORCHESTRATOR_* values, then `vars` overridden by `--var`, then
    // the stage's `env`.
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","vars":{"FROM_PIPE":"pipe","BOTH":"pipe","OVER":"pipe"},"stages":[
          {"kind":"command","id":"s",
           "command":"echo ${FROM_CLI} $FROM_PIPE ${BOTH} ${OVER} ${CODEX_ORCHESTRATOR_TASK_ID} > out.txt; sh -c 'echo child=$FROM_CLI' >> out.txt",
           "env":{"OVER":"stage"}}]}]}"#)
        .env("FROM_PIPE", "caller")
        .env("BOTH", "caller");
    let text = shell_output(
        &env,
        &[
            "--var",
            "FROM_CLI=cli value",
            "--var",
            "BOTH=cli",
            "--var",
            "CODEX_ORCHESTRATOR_TASK_ID=var-wins",
        ],
    );
    assert_eq!(
        text, "cli value pipe cli stage var-wins\nchild=cli value\n",
        "exported, so child processes see them too"
    );
}

#[test]
fn the_manifest_and_the_log_record_the_command_as_written() {
    let command = "for f in a b; do echo ${f}; done; echo $$ > out.txt";
    let env = TestEnv::new().config(&one_stage(command, ""));
    let out = env.start("p", &["--var", "f=never-used"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["commands"][0]["command"], command);
    let log = crate::harness::read_lines(&env.run_dir(&out.run_id()).join("commands/01-s.ndjson"));
    assert_eq!(log[0]["type"], "command:start");
    assert_eq!(log[0]["command"], command);
}

#[test]
fn cwd_expands_declared_variables_and_the_environment() {
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","vars":{"SUB":"a"},"stages":[
          {"kind":"command","id":"s","cwd":"${SUB}/${LEAF}/${DEEP}","command":"pwd > $CODEX_ORCHESTRATOR_ROOT/out.txt",
           "env":{"DEEP":"d"}}]}]}"#)
        .env("LEAF", "b");
    std::fs::create_dir_all(env.path().join("a/b/d")).expect("mkdir");
    let text = shell_output(&env, &[]);
    assert!(text.trim_end().ends_with("/a/b/d"), "{text}");
}

#[test]
fn plan_shows_each_stages_variables() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","vars":{"A":"1","B":"2"},"stages":[
          {"kind":"command","id":"s","command":"echo $A","env":{"B":"stage"}},
          {"kind":"command","id":"t","command":"echo $B"}]}]}"#,
    );
    let out = env.cli([
        "plan", "p", "--format", "json", "--var", "A=cli", "--var", "C=3",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(
        j["stages"][0]["variables"],
        serde_json::json!({"A": "cli", "B": "stage", "C": "3"})
    );
    assert_eq!(
        j["stages"][1]["variables"],
        serde_json::json!({"A": "cli", "B": "2", "C": "3"})
    );
    let text = env.cli(["plan", "p", "--var", "A=cli"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("vars: A=cli B=stage"),
        "{}",
        text.stdout
    );
}

//! Deep chains of sub-pipelines: planned and run in time and output linear in the depth.
//! (How fast is measured in `bench/`; these tests check the shape and that nothing overflows.)

use crate::harness::TestEnv;

/// `p0` runs `p1` runs ... `p<depth-1>`, each with one command stage first.
fn chain(depth: usize) -> String {
    let pipelines: Vec<String> = (0..depth)
        .map(|i| {
            let sub = if i + 1 < depth {
                format!(
                    r#",{{"kind":"subpipeline","id":"down","pipeline":"p{}"}}"#,
                    i + 1
                )
            } else {
                String::new()
            };
            format!(
                r#"{{"id":"p{i}","stages":[{{"kind":"command","id":"c","command":"true"}}{sub}]}}"#
            )
        })
        .collect();
    format!(r#"{{"pipelines":[{}]}}"#, pipelines.join(","))
}

#[test]
fn a_5000_deep_chain_is_planned() {
    let env = TestEnv::new().config(&chain(5000));
    let (out, _) = env.cli_bounded(
        ["plan", "p0", "--format", "json"],
        std::time::Duration::from_secs(120),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["stages"].as_array().map(Vec::len), Some(2));
}

/// Progress lines of nested runs are indented by depth up to a cap, then the depth is spelled
/// out: a line is as long at depth 30 as at depth 5, so the output grows linearly with the
/// depth (it used to grow with its square: 870 KB of stderr at depth 500).
#[test]
fn progress_lines_of_nested_runs_stay_short() {
    let depth = 30;
    let env = TestEnv::new().config(&chain(depth));
    let out = env.cli(["start", "p0"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let widest_indent = lines
        .iter()
        .map(|l| l.len() - l.trim_start().len())
        .max()
        .expect("lines");
    assert!(
        widest_indent <= 8,
        "indentation capped, got {widest_indent}"
    );
    assert!(
        out.stderr
            .contains(&format!("[depth {}] p{}: ", depth - 1, depth - 1)),
        "the depth is spelled out past the cap:\n{}",
        out.stderr
    );
    // Every line is bounded by the same constant whatever its depth.
    let longest = lines.iter().map(|l| l.len()).max().expect("lines");
    assert!(longest < 200, "longest line {longest} bytes");
}

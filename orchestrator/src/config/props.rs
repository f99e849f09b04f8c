//! Property tests of the whole validator (load + cross-checks) against a reference written
//! independently: for random pipelines with random `dependsOn` lists (unknown ids, duplicate
//! ids, self-references and cycles included), the config is accepted exactly when the
//! reference says the graph is well-formed.

use proptest::prelude::*;

/// Reference verdict: ids unique, every dependency known and not the stage itself, and Kahn's
/// algorithm orders every stage.
fn reference_ok(ids: &[String], deps: &[Option<Vec<String>>]) -> bool {
    let n = ids.len();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    if unique.len() != n {
        return false;
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        match &deps[i] {
            None => {
                if i > 0 {
                    edges[i].push(i - 1);
                }
            }
            Some(list) => {
                for d in list {
                    let Some(j) = ids.iter().position(|x| x == d) else {
                        return false;
                    };
                    if j == i {
                        return false;
                    }
                    edges[i].push(j);
                }
            }
        }
    }
    let mut indeg = vec![0usize; n];
    for e in &edges {
        for &t in e {
            indeg[t] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = ready.pop() {
        seen += 1;
        for &t in &edges[i] {
            indeg[t] -= 1;
            if indeg[t] == 0 {
                ready.push(t);
            }
        }
    }
    seen == n
}

fn config_json(ids: &[String], deps: &[Option<Vec<String>>]) -> String {
    let stages: Vec<serde_json::Value> = ids
        .iter()
        .zip(deps)
        .map(|(id, d)| {
            let mut s = serde_json::json!({"kind": "command", "id": id, "command": "true"});
            if let Some(d) = d {
                s["dependsOn"] = serde_json::json!(d);
            }
            s
        })
        .collect();
    serde_json::json!({"pipelines": [{"id": "p", "stages": stages}]}).to_string()
}

proptest! {
    #[test]
    fn validator_agrees_with_the_reference(
        raw_ids in proptest::collection::vec(0u8..9, 1..9),
        raw_deps in proptest::collection::vec(proptest::option::of(proptest::collection::vec(0u8..10, 0..4)), 9),
    ) {
        // Ids from a small alphabet so duplicates happen; dependency 9 is never an id (unknown).
        let ids: Vec<String> = raw_ids.iter().map(|i| format!("s{i}")).collect();
        let deps: Vec<Option<Vec<String>>> = raw_deps[..ids.len()]
            .iter()
            .map(|d| d.as_ref().map(|l| l.iter().map(|x| format!("s{x}")).collect()))
            .collect();
        let text = config_json(&ids, &deps);
        let verdict = super::parse(std::path::Path::new("c.json"), &text, false);
        prop_assert_eq!(verdict.is_ok(), reference_ok(&ids, &deps), "{}", text);
    }
}

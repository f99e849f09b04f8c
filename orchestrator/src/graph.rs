//! The stage graph of one pipeline: who waits for whom, checked for unknown ids,
//! self-dependencies and cycles, with topological levels for display. Below both config
//! validation and planning, so it knows stages only as ids and their `dependsOn`.

/// Why a pipeline's stages do not form a valid graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// `dependsOn` names a stage that does not exist.
    #[error("depends on `{missing}`, which is not a stage of this pipeline")]
    Unknown {
        /// The stage with the bad reference.
        stage: String,
        /// The missing id.
        missing: String,
    },
    /// A stage depends on itself.
    #[error("a stage cannot depend on itself")]
    SelfDependency {
        /// The stage.
        stage: String,
    },
    /// Stages wait for each other in a circle.
    #[error("stages depend on each other in a cycle: {}{}", .cycle.join(" -> "), implicit_note(.implicit))]
    Cycle {
        /// `a -> b -> a`.
        cycle: Vec<String>,
        /// `(stage, previous)` for each edge of the cycle that comes from the implicit rule (a
        /// stage without `dependsOn` depends on the stage before it), which the config does
        /// not spell out and the message must.
        implicit: Vec<(String, String)>,
    },
}

/// ` (`b` has no `dependsOn`, so it depends on the stage before it, `a`)` for each implicit edge.
fn implicit_note(implicit: &[(String, String)]) -> String {
    implicit
        .iter()
        .map(|(stage, prev)| {
            format!(
                " (`{stage}` has no `dependsOn`, so it depends on the stage before it, `{prev}`)"
            )
        })
        .collect()
}

impl GraphError {
    /// The stage the error is about.
    pub fn stage(&self) -> &str {
        match self {
            GraphError::Unknown { stage, .. } | GraphError::SelfDependency { stage } => stage,
            GraphError::Cycle { cycle, .. } => &cycle[0],
        }
    }
}

/// One stage as the graph sees it: its id and its `dependsOn`, if it has one.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The stage id.
    pub id: &'a str,
    /// `dependsOn`; `None` means "the stage before it".
    pub depends_on: Option<&'a [String]>,
}

/// Dependencies by stage position.
#[derive(Debug, Clone)]
pub struct StageGraph {
    /// `deps[i]`: positions stage `i` waits for (sorted, unique).
    pub deps: Vec<Vec<usize>>,
    /// `dependents[i]`: positions waiting for stage `i`.
    pub dependents: Vec<Vec<usize>>,
    /// Topological level of each stage (0 = no dependencies).
    pub levels: Vec<usize>,
}

impl StageGraph {
    /// Builds and checks the graph. A stage without `dependsOn` waits for the stage before it,
    /// so configs written for the peer keep their order.
    pub fn build(stages: &[Node<'_>]) -> Result<StageGraph, GraphError> {
        let ids: Vec<&str> = stages.iter().map(|s| s.id).collect();
        let mut deps = Vec::with_capacity(ids.len());
        for (i, s) in stages.iter().enumerate() {
            let mut d = match s.depends_on {
                None if i == 0 => Vec::new(),
                None => vec![i - 1],
                Some(list) => {
                    let mut out = Vec::with_capacity(list.len());
                    for name in list {
                        let Some(j) = ids.iter().position(|x| x == name) else {
                            return Err(GraphError::Unknown {
                                stage: s.id.to_owned(),
                                missing: name.clone(),
                            });
                        };
                        if j == i {
                            return Err(GraphError::SelfDependency {
                                stage: s.id.to_owned(),
                            });
                        }
                        out.push(j);
                    }
                    out
                }
            };
            d.sort_unstable();
            d.dedup();
            deps.push(d);
        }
        if let Some(cycle) = find_cycle(&deps) {
            // `deps` edges point from a stage to what it waits for; spell the cycle in the
            // direction of waiting: `a -> b` means a depends on b.
            let implicit = cycle
                .windows(2)
                .filter(|w| stages[w[0]].depends_on.is_none())
                .map(|w| (ids[w[0]].to_owned(), ids[w[1]].to_owned()))
                .collect();
            return Err(GraphError::Cycle {
                cycle: cycle.iter().map(|&i| ids[i].to_owned()).collect(),
                implicit,
            });
        }
        let mut dependents = vec![Vec::new(); deps.len()];
        for (i, d) in deps.iter().enumerate() {
            for &j in d {
                dependents[j].push(i);
            }
        }
        let order = topo_order(&deps);
        let mut levels = vec![0; deps.len()];
        for &i in &order {
            levels[i] = deps[i].iter().map(|&j| levels[j] + 1).max().unwrap_or(0);
        }
        Ok(StageGraph {
            deps,
            dependents,
            levels,
        })
    }

    /// Stages grouped by level, each group in stage order.
    pub fn by_level(&self) -> Vec<Vec<usize>> {
        let max = self.levels.iter().copied().max().map_or(0, |m| m + 1);
        let mut out = vec![Vec::new(); max];
        for (i, &l) in self.levels.iter().enumerate() {
            out[l].push(i);
        }
        out
    }
}

/// A topological order (dependencies first); assumes no cycle.
fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut indeg: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..deps.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &k in &dependents[i] {
            indeg[k] -= 1;
            if indeg[k] == 0 {
                ready.push_back(k);
            }
        }
    }
    order
}

/// A cycle in a directed graph given as adjacency lists, spelled as nodes with the first
/// repeated at the end (`[a, b, a]`), or `None`. Iterative DFS so deep graphs cannot overflow
/// the stack.
pub fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Grey,
        Black,
    }
    let mut color = vec![Color::White; edges.len()];
    for start in 0..edges.len() {
        if color[start] != Color::White {
            continue;
        }
        // Stack of (node, next edge to look at); the grey path is the stack itself.
        let mut stack = vec![(start, 0usize)];
        color[start] = Color::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&to) = edges[node].get(*next) {
                *next += 1;
                match color[to] {
                    Color::White => {
                        color[to] = Color::Grey;
                        stack.push((to, 0));
                    }
                    Color::Grey => {
                        let from = stack
                            .iter()
                            .position(|&(n, _)| n == to)
                            .expect("grey nodes are on the stack");
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        cycle.push(to);
                        return Some(cycle);
                    }
                    Color::Black => {}
                }
            } else {
                color[node] = Color::Black;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: Kahn's algorithm says whether a graph is acyclic.
    fn acyclic_by_kahn(edges: &[Vec<usize>]) -> bool {
        let n = edges.len();
        let mut indeg = vec![0; n];
        for e in edges {
            for &t in e {
                indeg[t] += 1;
            }
        }
        let mut q: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut seen = 0;
        while let Some(i) = q.pop() {
            seen += 1;
            for &t in &edges[i] {
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    q.push(t);
                }
            }
        }
        seen == n
    }

    proptest! {
        #[test]
        fn find_cycle_agrees_with_kahn(n in 1usize..12, raw in proptest::collection::vec((0usize..12, 0usize..12), 0..30)) {
            let mut edges = vec![Vec::new(); n];
            for (a, b) in raw {
                if a < n && b < n {
                    edges[a].push(b);
                }
            }
            let cycle = find_cycle(&edges);
            prop_assert_eq!(cycle.is_none(), acyclic_by_kahn(&edges));
            if let Some(c) = cycle {
                prop_assert_eq!(c.first(), c.last());
                for w in c.windows(2) {
                    prop_assert!(edges[w[0]].contains(&w[1]), "cycle uses a real edge");
                }
            }
        }

        #[test]
        fn topo_order_puts_dependencies_first(n in 1usize..15, raw in proptest::collection::vec((0usize..15, 0usize..15), 0..40)) {
            // Only edges to lower indices: always acyclic.
            let mut deps = vec![Vec::new(); n];
            for (a, b) in raw {
                if a < n && b < a {
                    deps[a].push(b);
                }
            }
            let order = topo_order(&deps);
            prop_assert_eq!(order.len(), n);
            let pos: Vec<usize> = (0..n).map(|i| order.iter().position(|&x| x == i).unwrap_or(usize::MAX)).collect();
            for (i, d) in deps.iter().enumerate() {
                for &j in d {
                    prop_assert!(pos[j] < pos[i]);
                }
            }
        }
    }
}

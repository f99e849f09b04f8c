//! Stage selection (`start --only/--skip/--from/--no-deps`): which stages of the top-level
//! pipeline a run runs. Decided here, before anything is written; the scheduler records every
//! stage left out as `skipped` (outcome `not_selected`) when the run starts, and a resume
//! rebuilds the selection from the record, so the stages left out stay out.
//!
//! The rules (README, "Running part of a pipeline"):
//! - `--only A,B`: A, B and every stage they depend on, transitively. With `--no-deps`, only
//!   A and B: what they depend on is taken as done.
//! - `--from X`: X, every stage that depends on X (transitively), and whatever those need
//!   that X itself does not (a parallel branch feeding X's dependents has not run either).
//!   What X needs is taken as done: it ran before, which is why one starts from X.
//! - `--skip A,B`: never A or B, applied last (also to a dependency `--only` pulled in).
//!
//! A stage left out counts as done for the stages that depend on it: they run as if it had
//! succeeded. A selection applies to the pipeline started, not to the child runs of its
//! sub-pipeline stages.

use shared_manifest::schema::SelectionRecord;

use crate::config::error::list;
use crate::config::Pipeline;
use crate::errors::AppError;
use crate::graph::StageGraph;

/// What the flags ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `--only`.
    pub only: Vec<String>,
    /// `--no-deps`.
    pub no_deps: bool,
    /// `--skip`.
    pub skip: Vec<String>,
    /// `--from`.
    pub from: Option<String>,
}

impl Request {
    /// True when no flag selects anything (every stage runs).
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.skip.is_empty() && self.from.is_none()
    }

    /// The flags as a user would type them (`--only build,test --no-deps`), for reasons.
    pub fn flags(&self) -> String {
        let mut parts = Vec::new();
        if !self.only.is_empty() {
            parts.push(format!("--only {}", self.only.join(",")));
        }
        if self.no_deps {
            parts.push("--no-deps".to_owned());
        }
        if let Some(from) = &self.from {
            parts.push(format!("--from {from}"));
        }
        if !self.skip.is_empty() {
            parts.push(format!("--skip {}", self.skip.join(",")));
        }
        parts.join(" ")
    }
}

/// A decided selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// What was asked for.
    pub request: Request,
    /// By stage position: true when the stage runs.
    pub selected: Vec<bool>,
}

impl Selection {
    /// Decides the stages `request` selects in `pipeline`. Every id is checked first: an
    /// unknown one is a usage error with a "did you mean" hint, as is a selection that leaves
    /// nothing to run. `None` when the request selects nothing in particular.
    pub fn decide(
        pipeline: &Pipeline,
        graph: &StageGraph,
        request: &Request,
    ) -> Result<Option<Selection>, AppError> {
        if request.is_empty() {
            return Ok(None);
        }
        let position = |flag: &str, id: &str| find(pipeline, flag, id);
        let n = pipeline.stages.len();
        let mut selected = vec![true; n];
        if !request.only.is_empty() {
            let named = request
                .only
                .iter()
                .map(|id| position("--only", id))
                .collect::<Result<Vec<_>, _>>()?;
            selected = vec![false; n];
            for &i in &named {
                selected[i] = true;
            }
            if !request.no_deps {
                for i in walk(&named, &graph.deps) {
                    selected[i] = true;
                }
            }
        }
        if let Some(from) = &request.from {
            let x = position("--from", from)?;
            let downstream = walk(&[x], &graph.dependents);
            let upstream_of_x = walk(&[x], &graph.deps);
            selected = vec![false; n];
            // X's dependents and everything they need, except what X needs (X's ancestors).
            for i in walk(&downstream, &graph.deps).into_iter().chain(downstream) {
                selected[i] = true;
            }
            for i in upstream_of_x {
                if i != x {
                    selected[i] = false;
                }
            }
            selected[x] = true;
        }
        for id in &request.skip {
            selected[position("--skip", id)?] = false;
        }
        if !selected.contains(&true) {
            return Err(AppError::Usage(format!(
                "{} leaves no stage of pipeline `{}` to run",
                request.flags(),
                pipeline.id
            )));
        }
        Ok(Some(Selection {
            request: request.clone(),
            selected,
        }))
    }

    /// The selection a run recorded, for its resume: the stages it selected, by id (a resume
    /// requires the same stage ids as the run). Ids the pipeline no longer has select nothing.
    pub fn from_record(pipeline: &Pipeline, record: &SelectionRecord) -> Selection {
        Selection {
            request: Request {
                only: record.only.clone(),
                no_deps: record.no_deps,
                skip: record.skip.clone(),
                from: record.from.clone(),
            },
            selected: pipeline
                .stages
                .iter()
                .map(|s| record.selected.contains(&s.id))
                .collect(),
        }
    }

    /// True when stage `pos` runs.
    pub fn runs(&self, pos: usize) -> bool {
        self.selected.get(pos).copied().unwrap_or(true)
    }

    /// Why a stage left out does not run (its `skip_reason` and progress line).
    pub fn reason(&self) -> String {
        format!("Skipped: not selected ({})", self.request.flags())
    }

    /// The manifest's `selection`.
    pub fn record(&self, pipeline: &Pipeline) -> SelectionRecord {
        SelectionRecord {
            only: self.request.only.clone(),
            no_deps: self.request.no_deps,
            skip: self.request.skip.clone(),
            from: self.request.from.clone(),
            selected: pipeline
                .stages
                .iter()
                .zip(&self.selected)
                .filter(|(_, &on)| on)
                .map(|(s, _)| s.id.clone())
                .collect(),
        }
    }
}

/// The position of stage `id`, or a usage error naming the flag, the pipeline, the closest id
/// and every id.
fn find(pipeline: &Pipeline, flag: &str, id: &str) -> Result<usize, AppError> {
    let id = id.trim();
    if let Some(i) = pipeline.stages.iter().position(|s| s.id == id) {
        return Ok(i);
    }
    let ids: Vec<&str> = pipeline.stages.iter().map(|s| s.id.as_str()).collect();
    if id.is_empty() {
        return Err(AppError::Usage(format!(
            "{flag}: an empty stage id (stages of pipeline `{}`: {})",
            pipeline.id,
            list(&ids)
        )));
    }
    let hint = crate::config::suggest::did_you_mean(id, &ids)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    Err(AppError::Usage(format!(
        "{flag} `{id}`: pipeline `{}` has no such stage{hint}; its stages: {}",
        pipeline.id,
        list(&ids)
    )))
}

/// Every stage reachable from `start` along `edges` (dependencies or dependents),
/// `start` itself excluded unless it is reachable from another start.
fn walk(start: &[usize], edges: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = vec![false; edges.len()];
    let mut todo: Vec<usize> = start.to_vec();
    let mut out = Vec::new();
    while let Some(n) = todo.pop() {
        for &next in &edges[n] {
            if !seen[next] {
                seen[next] = true;
                out.push(next);
                todo.push(next);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a -> b -> d`, `c -> d`, `d -> e`, `f` alone (edges point at dependents).
    fn pipeline() -> Pipeline {
        let text = r#"{"pipelines":[{"id":"p","stages":[
            {"kind":"command","id":"a","command":"true","dependsOn":[]},
            {"kind":"command","id":"b","command":"true","dependsOn":["a"]},
            {"kind":"command","id":"c","command":"true","dependsOn":[]},
            {"kind":"command","id":"d","command":"true","dependsOn":["b","c"]},
            {"kind":"command","id":"e","command":"true","dependsOn":["d"]},
            {"kind":"command","id":"f","command":"true","dependsOn":[]}]}]}"#;
        let loaded =
            crate::config::parse(std::path::Path::new("c.json"), text, true).expect("valid config");
        loaded.config.pipelines[0].clone()
    }

    fn run(req: Request) -> Result<String, String> {
        let p = pipeline();
        let graph = p.graph().expect("graph");
        match Selection::decide(&p, &graph, &req) {
            Ok(None) => Ok("all".into()),
            Ok(Some(s)) => Ok(s.record(&p).selected.join(",")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn req(only: &[&str], no_deps: bool, skip: &[&str], from: Option<&str>) -> Request {
        Request {
            only: only.iter().map(|s| s.to_string()).collect(),
            no_deps,
            skip: skip.iter().map(|s| s.to_string()).collect(),
            from: from.map(str::to_owned),
        }
    }

    #[test]
    fn only_takes_what_the_stages_depend_on_unless_no_deps() {
        assert_eq!(run(req(&[], false, &[], None)), Ok("all".into()));
        assert_eq!(run(req(&["d"], false, &[], None)), Ok("a,b,c,d".into()));
        assert_eq!(run(req(&["d"], true, &[], None)), Ok("d".into()));
        assert_eq!(run(req(&["b", "f"], false, &[], None)), Ok("a,b,f".into()));
        assert_eq!(run(req(&["d"], false, &["a"], None)), Ok("b,c,d".into()));
    }

    #[test]
    fn from_takes_the_dependents_and_what_they_need_that_the_stage_does_not() {
        // b's dependents d, e; d also needs c, which b does not need; a is b's own need.
        assert_eq!(run(req(&[], false, &[], Some("b"))), Ok("b,c,d,e".into()));
        assert_eq!(run(req(&[], false, &[], Some("d"))), Ok("d,e".into()));
        assert_eq!(run(req(&[], false, &[], Some("f"))), Ok("f".into()));
        assert_eq!(run(req(&[], false, &["c"], Some("b"))), Ok("b,d,e".into()));
    }

    #[test]
    fn skip_leaves_out_exactly_the_named_stages() {
        assert_eq!(
            run(req(&[], false, &["b", "f"], None)),
            Ok("a,c,d,e".into())
        );
    }

    #[test]
    fn unknown_ids_and_empty_selections_are_usage_errors() {
        let e = run(req(&["dd"], false, &[], None)).expect_err("unknown");
        assert!(
            e.contains("--only `dd`: pipeline `p` has no such stage (did you mean `d`?)"),
            "{e}"
        );
        let e = run(req(&[], false, &["zzz"], None)).expect_err("unknown");
        assert!(
            e.contains("--skip `zzz`") && !e.contains("did you mean"),
            "{e}"
        );
        let e = run(req(&[], false, &[], Some(""))).expect_err("empty");
        assert!(e.contains("--from: an empty stage id"), "{e}");
        let e = run(req(&["a"], true, &["a"], None)).expect_err("nothing left");
        assert!(
            e.contains("--only a --no-deps --skip a leaves no stage of pipeline `p` to run"),
            "{e}"
        );
    }

    #[test]
    fn a_recorded_selection_is_rebuilt_by_id() {
        let p = pipeline();
        let graph = p.graph().expect("graph");
        let s = Selection::decide(&p, &graph, &req(&["d"], true, &[], None))
            .expect("ok")
            .expect("some");
        let record = s.record(&p);
        assert_eq!(Selection::from_record(&p, &record), s);
        assert_eq!(s.reason(), "Skipped: not selected (--only d --no-deps)");
    }
}

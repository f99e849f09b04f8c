//! Flags that shape one run (clap types), shared by `start`, `resume` and `plan`: which stages run
//! (`--only`, `--skip`, `--from`, `--no-deps`) and what a failure does (`--fail-fast`,
//! `--no-fail-fast`). Their meaning lives in `plan/selection.rs` and `Ctx::on_failure`.

use clap::Args;

/// Stage selection and the failure policy of a run.
#[derive(Debug, Args, Clone, Default)]
pub struct RunShapeArgs {
    /// Run only these stages (comma-separated or repeated) and what they depend on,
    /// transitively; the others are recorded `skipped` (not selected).
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "from"
    )]
    pub only: Vec<String>,
    /// With `--only`: not what they depend on (taken as done).
    #[arg(long, requires = "only")]
    pub no_deps: bool,
    /// Never run these stages (comma-separated or repeated); their dependents still run.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Run this stage, every stage that depends on it, and what those need that it does not
    /// need itself; what it needs is taken as done (it ran before).
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Stop at the first failure: every stage's `onFailure` is `abort` for this run (nothing
    /// new starts, running stages finish). `allowFailure` stages still only warn.
    #[arg(long, overrides_with = "no_fail_fast")]
    pub fail_fast: bool,
    /// Never stop for a failure: every stage's `onFailure` is `continue` for this run (its
    /// dependents run too); the run still fails at the end.
    #[arg(long, overrides_with = "fail_fast")]
    pub no_fail_fast: bool,
}

impl RunShapeArgs {
    /// The stage selection asked for.
    pub fn selection(&self) -> crate::plan::SelectionRequest {
        crate::plan::SelectionRequest {
            only: self.only.clone(),
            no_deps: self.no_deps,
            skip: self.skip.clone(),
            from: self.from.clone(),
        }
    }

    /// `Some(true)` for `--fail-fast`, `Some(false)` for `--no-fail-fast` (the last one given
    /// wins), `None` for neither.
    pub fn fail_fast(&self) -> Option<bool> {
        match (self.fail_fast, self.no_fail_fast) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

//! Pipeline-level `delivery`: what a run that succeeded hands over — an evidence bundle, a
//! commit pushed to a branch, a pull request — as validated config.

use std::time::Duration;

/// Default branch of a `git`/`github` delivery.
pub const DEFAULT_BRANCH: &str = "co/${TASK}/${RUN_ID}";
/// Default commit message.
pub const DEFAULT_MESSAGE: &str = "codex-orchestrator: pipeline ${PIPELINE}, run ${RUN_ID}";
/// Default wait for a pull request's checks (`ciTimeoutMs`).
pub const DEFAULT_CI_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default time given to checks to appear on a new pull request before "no checks" is
/// believed (`checksGraceMs`): CI systems register their checks a few seconds after the push.
pub const DEFAULT_CHECKS_GRACE: Duration = Duration::from_secs(20);

/// One delivery, in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// `{"kind": "bundle"}`: an evidence directory with an in-toto statement.
    Bundle,
    /// `{"kind": "git", ...}`: commit the work tree on a branch and push it.
    Git(GitDelivery),
    /// `{"kind": "github", ...}`: as `git`, then a pull request through `gh`.
    Github(GithubDelivery),
}

impl Delivery {
    /// `bundle`, `git` or `github`.
    pub fn kind(&self) -> &'static str {
        match self {
            Delivery::Bundle => "bundle",
            Delivery::Git(_) => "git",
            Delivery::Github(_) => "github",
        }
    }

    /// The git part of a `git` or `github` delivery.
    pub fn git(&self) -> Option<&GitDelivery> {
        match self {
            Delivery::Bundle => None,
            Delivery::Git(g) => Some(g),
            Delivery::Github(g) => Some(&g.git),
        }
    }
}

/// Where and how a commit of the work tree is pushed. Templates may use `${TASK}`,
/// `${RUN_ID}`, `${PIPELINE}` and the runner variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDelivery {
    /// The remote to push to (`origin`).
    pub remote: String,
    /// Branch template (default [`DEFAULT_BRANCH`]).
    pub branch: String,
    /// Commit message template (default [`DEFAULT_MESSAGE`]).
    pub message: String,
}

/// A pull request after the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubDelivery {
    /// The push.
    pub git: GitDelivery,
    /// Base branch (default: the repository's default branch, as `gh` decides).
    pub base: Option<String>,
    /// Title template (default: the commit message's first line).
    pub title: Option<String>,
    /// Body template (default: the run's summary and the loop's iterations).
    pub body: Option<String>,
    /// Open it as a draft.
    pub draft: bool,
    /// Wait for its checks (`gh pr checks --watch`).
    pub wait_for_ci: bool,
    /// How long to wait for them.
    pub ci_timeout: Duration,
    /// How long "no checks" may be a check that has not registered yet.
    pub checks_grace: Duration,
}

/// Names a delivery template may use besides the runner variables.
pub const TEMPLATE_NAMES: &[&str] = &["TASK", "RUN_ID", "PIPELINE"];

/// Expands `${NAME}` in a delivery template: `TASK`, `RUN_ID`, `PIPELINE`, then the runner
/// variables (`vars`, `--var`). Anything else is an error, found at plan time.
pub fn expand(
    template: &str,
    fixed: &[(&str, &str)],
    vars: &[(String, String)],
) -> Result<String, crate::config::vars::VarError> {
    crate::config::vars::expand_cwd(template, |name| {
        fixed
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| {
                vars.iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
    })
}

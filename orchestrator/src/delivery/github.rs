//! A `github` delivery's pull request, through the GitHub CLI as the user has set it up (`gh
//! auth login`): `gh pr create` for the pushed branch, its URL and number recorded, then,
//! with `waitForCi`, `gh pr checks --watch` bounded by `ciTimeoutMs`. A repository with no
//! checks is not a failure: `gh` says "no checks reported" (once the checks have had
//! `checksGraceMs` to register) and the delivery succeeds with `ci.status: none`.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::delivery::errors::DeliveryError;

/// How long one look at the checks may wait between tries while they are not there yet.
const NO_CHECKS_RETRY: Duration = Duration::from_secs(5);

/// What `gh` printed and how it ended.
struct GhOutput {
    code: i32,
    stdout: String,
    stderr: String,
}

fn shown(args: &[String]) -> String {
    args.join(" ")
}

/// Runs `gh <args>` in `dir`; `None` when `limit` ran out first (the process is killed).
async fn gh(
    dir: &Path,
    args: &[String],
    limit: Option<Duration>,
) -> Result<Option<GhOutput>, DeliveryError> {
    let mut cmd = Command::new("gh");
    cmd.args(args)
        .current_dir(dir)
        .env("GH_PROMPT_DISABLED", "1")
        .env("GH_NO_UPDATE_NOTIFIER", "1")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let run = cmd.output();
    let out = match limit {
        Some(l) => match tokio::time::timeout(l, run).await {
            Ok(out) => out,
            Err(_) => return Ok(None),
        },
        None => run.await,
    };
    let out = out.map_err(|source| DeliveryError::GhSpawn {
        args: shown(args),
        source,
    })?;
    Ok(Some(GhOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }))
}

fn failed(args: &[String], out: &GhOutput) -> DeliveryError {
    let text = if out.stderr.is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    DeliveryError::Gh {
        args: shown(args),
        code: out.code,
        output: text.chars().take(1000).collect(),
    }
}

/// An opened pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its URL.
    pub url: String,
    /// Its number (from the URL).
    pub number: Option<u64>,
}

/// What a pull request asks for.
#[derive(Debug, Clone)]
pub struct PrRequest {
    /// Head branch (pushed).
    pub branch: String,
    /// Base branch; `None`: the repository's default.
    pub base: Option<String>,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// As a draft.
    pub draft: bool,
}

/// The number at the end of `https://github.com/o/r/pull/42`.
fn number_of(url: &str) -> Option<u64> {
    url.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

/// The last URL `gh` printed.
fn url_in(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .flat_map(|l| l.split_whitespace().rev())
        .find(|w| w.starts_with("https://") || w.starts_with("http://"))
        .map(|w| w.trim_end_matches(['.', ',']).to_owned())
}

/// Opens the pull request (or finds the one already open for the branch: a retried delivery).
pub async fn open(dir: &Path, req: &PrRequest) -> Result<PullRequest, DeliveryError> {
    let mut args: Vec<String> = vec![
        "pr".into(),
        "create".into(),
        "--head".into(),
        req.branch.clone(),
        "--title".into(),
        req.title.clone(),
        "--body".into(),
        req.body.clone(),
    ];
    if let Some(base) = &req.base {
        args.push("--base".into());
        args.push(base.clone());
    }
    if req.draft {
        args.push("--draft".into());
    }
    let out = gh(dir, &args, None).await?.expect("no limit");
    if out.code == 0 {
        let url = url_in(&out.stdout).ok_or_else(|| {
            DeliveryError::Other(format!(
                "`gh pr create` printed no pull request URL: {}",
                out.stdout
            ))
        })?;
        return Ok(PullRequest {
            number: number_of(&url),
            url,
        });
    }
    // A pull request for the branch exists already (a retry after a crash): take it.
    if out.stderr.contains("already exists") {
        if let Some(url) = url_in(&out.stderr) {
            return Ok(PullRequest {
                number: number_of(&url),
                url,
            });
        }
    }
    Err(failed(&args, &out))
}

/// How a pull request's checks ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Every check passed.
    Passed,
    /// A check failed.
    Failed,
    /// No checks are configured for the pull request.
    None,
    /// They did not finish in time.
    TimedOut,
}

impl Checks {
    /// As the record spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Checks::Passed => "passed",
            Checks::Failed => "failed",
            Checks::None => "none",
            Checks::TimedOut => "timed_out",
        }
    }
}

/// Waits for the checks of pull request `pr` (URL or number); returns how they ended and what
/// `gh` said last.
pub async fn wait_for_checks(
    dir: &Path,
    pr: &str,
    timeout: Duration,
    grace: Duration,
) -> Result<(Checks, String), DeliveryError> {
    let start = Instant::now();
    let args: Vec<String> = vec![
        "pr".into(),
        "checks".into(),
        pr.to_owned(),
        "--watch".into(),
    ];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok((Checks::TimedOut, String::new()));
        }
        let Some(out) = gh(dir, &args, Some(left)).await? else {
            return Ok((Checks::TimedOut, String::new()));
        };
        let said = format!("{}\n{}", out.stdout, out.stderr).trim().to_owned();
        let said: String = said.chars().take(2000).collect();
        if said.contains("no checks reported") {
            // Checks register a few seconds after a push: believe "none" only after the grace.
            if start.elapsed() >= grace {
                return Ok((Checks::None, said));
            }
            let pause = NO_CHECKS_RETRY.min(grace.saturating_sub(start.elapsed()));
            tokio::time::sleep(pause.min(left)).await;
            continue;
        }
        match out.code {
            0 => return Ok((Checks::Passed, said)),
            // 8: still pending (a `gh` that returned early); look again.
            8 => tokio::time::sleep(NO_CHECKS_RETRY.min(left)).await,
            1 => return Ok((Checks::Failed, said)),
            _ => return Err(failed(&args, &out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_numbers_are_read_from_what_gh_prints() {
        let out = "Creating pull request for co/t/r into main\n\nhttps://github.com/o/r/pull/42\n";
        let url = url_in(out).expect("url");
        assert_eq!(url, "https://github.com/o/r/pull/42");
        assert_eq!(number_of(&url), Some(42));
        let exists = "a pull request for branch \"x\" into branch \"main\" already exists:\nhttps://github.com/o/r/pull/7";
        assert_eq!(
            url_in(exists).as_deref(),
            Some("https://github.com/o/r/pull/7")
        );
        assert_eq!(url_in("nothing here"), None);
    }
}

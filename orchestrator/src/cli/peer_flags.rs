//! The peer's flags that several verbs share (clap types): the plan target, the issue fields
//! recorded in the manifest, and the flags of peer features outside the runner, which are
//! accepted so peer command lines keep working and say on stderr that they have no effect.

use clap::Args;

/// `--target` / `--target-stage` (the peer's alias; `--target` wins when both are given).
#[derive(Debug, Args, Clone, Default)]
pub struct TargetArgs {
    /// The plan target: a stage id, `<pipeline>:<stage>`, or one of a stage's `plan.aliases`
    /// (default: the stage marked `plan.defaultTarget`, else the first runnable one).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// The same as `--target` (the peer's other spelling).
    #[arg(long, value_name = "STAGE")]
    pub target_stage: Option<String>,
}

impl TargetArgs {
    /// The target asked for, trimmed; blank counts as not given.
    pub fn id(&self) -> Option<&str> {
        [&self.target, &self.target_stage]
            .into_iter()
            .flatten()
            .map(|t| t.trim())
            .find(|t| !t.is_empty())
    }
}

/// `--issue-provider`, `--issue-id`, `--issue-identifier`, `--issue-updated-at`: recorded in
/// the manifest's `issue_*` keys, as the peer does.
#[derive(Debug, Args, Clone, Default)]
pub struct IssueArgs {
    /// Issue tracker of the issue this run works on (recorded as `issue_provider`).
    #[arg(long, value_name = "NAME")]
    pub issue_provider: Option<String>,
    /// Its id (recorded as `issue_id`).
    #[arg(long, value_name = "ID")]
    pub issue_id: Option<String>,
    /// Its human identifier, e.g. `ABC-1` (recorded as `issue_identifier`).
    #[arg(long, value_name = "ID")]
    pub issue_identifier: Option<String>,
    /// When it was last updated (recorded as `issue_updated_at`).
    #[arg(long, value_name = "TIME")]
    pub issue_updated_at: Option<String>,
}

impl IssueArgs {
    /// The manifest keys, all four as the peer writes them (`null` when not given).
    pub fn manifest_keys(&self) -> serde_json::Map<String, serde_json::Value> {
        [
            ("issue_provider", &self.issue_provider),
            ("issue_id", &self.issue_id),
            ("issue_identifier", &self.issue_identifier),
            ("issue_updated_at", &self.issue_updated_at),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.clone().map_or(serde_json::Value::Null, Into::into),
            )
        })
        .collect()
    }
}

/// Flags of peer features that are not part of the runner: the auto issue log and the `rlm`
/// pipeline's agent loop. Accepted; each one given is named in a one-line note on stderr.
#[derive(Debug, Args, Clone, Default)]
pub struct InertArgs {
    /// Peer only (doctor issue bundle on failure): has no effect here.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub auto_issue_log: Option<String>,
    /// Peer `rlm` pipeline only: has no effect here.
    #[arg(long, value_name = "TEXT")]
    pub goal: Option<String>,
    /// Peer `rlm` pipeline only: has no effect here.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub multi_agent: Option<String>,
    /// Peer `rlm` pipeline only (legacy spelling of `--multi-agent`): has no effect here.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub collab: Option<String>,
    /// Peer `rlm` pipeline only: has no effect here.
    #[arg(long, value_name = "CMD")]
    pub validator: Option<String>,
    /// Peer `rlm` pipeline only: has no effect here.
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<String>,
    /// Peer `rlm` pipeline only: has no effect here.
    #[arg(long, value_name = "N")]
    pub max_minutes: Option<String>,
    /// Peer `rlm` pipeline only: has no effect here.
    #[arg(long, value_name = "ROLES")]
    pub roles: Option<String>,
}

impl InertArgs {
    /// One line per flag given: what it is for on the peer, and that it does nothing here.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.auto_issue_log.is_some() {
            notes.push("note: --auto-issue-log has no effect here (the peer's doctor issue log is not part of this runner)".to_owned());
        }
        let rlm: Vec<&str> = [
            ("--goal", self.goal.is_some()),
            ("--multi-agent", self.multi_agent.is_some()),
            ("--collab", self.collab.is_some()),
            ("--validator", self.validator.is_some()),
            ("--max-iterations", self.max_iterations.is_some()),
            ("--max-minutes", self.max_minutes.is_some()),
            ("--roles", self.roles.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if !rlm.is_empty() {
            notes.push(format!(
                "note: {} {} no effect here (the peer's rlm agent loop is not part of this runner)",
                rlm.join(", "),
                if rlm.len() == 1 { "has" } else { "have" }
            ));
        }
        notes
    }
}

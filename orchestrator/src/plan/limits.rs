//! What the kernel lets a new process be handed: each stage's `sh -c <command>` with its
//! environment must fit in `ARG_MAX` (argument and environment strings and their pointers),
//! or the spawn fails with "Argument list too long" after earlier stages ran. Checked for
//! every stage a plan can run, with the environment this runner passes on.

use crate::config::error::Loc;
use crate::config::{Config, ConfigError, Pipeline, StageKind};
use crate::errors::AppError;

/// Room kept for the variables the runner adds to every stage (run id, paths, the peer's
/// variables): a generous bound on their size.
const RUNNER_VARIABLES: usize = 16 * 1024;

/// One string handed to `execve`: its bytes, its NUL and its pointer.
fn cost(len: usize) -> usize {
    len + 1 + std::mem::size_of::<usize>()
}

/// The limit, from `sysconf(_SC_ARG_MAX)` (Linux: a quarter of the stack limit); the
/// traditional 128 KiB floor when the system does not say.
fn arg_max() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::ARG_MAX)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(128 * 1024)
}

/// Refuses a stage of `reachable` whose command and environment would not fit.
pub(crate) fn check_spawn_sizes(
    config: &Config,
    reachable: &[&Pipeline],
    cli: &[(String, String)],
) -> Result<(), AppError> {
    let limit = arg_max();
    // The runner's own environment, which every stage inherits, and `--var`s (exported too).
    let inherited: usize = std::env::vars_os()
        .map(|(k, v)| cost(k.len() + 1 + v.len()))
        .sum::<usize>()
        + cli
            .iter()
            .map(|(k, v)| cost(k.len() + 1 + v.len()))
            .sum::<usize>()
        + RUNNER_VARIABLES
        + cost("/bin/sh".len())
        + cost("-c".len());
    for p in reachable {
        let vars: usize = p
            .vars
            .iter()
            .map(|(k, v)| cost(k.len() + 1 + v.len()))
            .sum();
        for s in &p.stages {
            let c = match &s.kind {
                StageKind::Command(c) => c,
                StageKind::Loop(l) => &l.build,
                StageKind::Subpipeline { .. } | StageKind::Approval(_) => continue,
            };
            let env: usize = c.env.iter().map(|(k, v)| cost(k.len() + 1 + v.len())).sum();
            let args: usize = c.args.iter().flatten().map(|a| cost(a.len())).sum();
            let total = inherited + vars + env + cost(c.command.len()) + args;
            if total > limit {
                return Err(AppError::Config(ConfigError::Invalid {
                    path: config.path.clone(),
                    location: Loc::root()
                        .with("pipeline", &p.id)
                        .with("stage", &s.id)
                        .field("command")
                        .render(),
                    message: format!(
                        "the command and its environment take about {total} bytes, over the {limit} a new process can be handed (ARG_MAX); put the command in a script or trim the environment"
                    ),
                }));
            }
        }
    }
    Ok(())
}

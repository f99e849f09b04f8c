//! What a pipeline's deliveries need, checked before a run starts (exit 2, nothing written): a
//! git work tree with the named remote for `git` and `github`, and the GitHub CLI on `PATH`
//! for `github`. A run that passes its gates must not find out only then that it cannot be
//! delivered.

use std::path::Path;

use crate::config::delivery::Delivery;
use crate::config::error::Loc;
use crate::config::{Config, ConfigError, Pipeline};
use crate::errors::AppError;

/// Checks `pipeline`'s deliveries against the repository at `repo`.
pub fn check(config: &Config, pipeline: &Pipeline, repo: &Path) -> Result<(), AppError> {
    for (i, d) in pipeline.delivery.iter().enumerate() {
        let loc = Loc::root()
            .with("pipeline", &pipeline.id)
            .with("delivery", format!("#{}", i + 1));
        let fail = |field: &str, message: String| {
            AppError::Config(ConfigError::Invalid {
                path: config.path.clone(),
                location: loc.field(field).render(),
                message,
            })
        };
        if let Some(g) = d.git() {
            crate::delivery::git::check_remote(repo, &g.remote).map_err(|m| fail("remote", m))?;
        }
        if matches!(d, Delivery::Github(_)) && !on_path("gh") {
            return Err(fail(
                "kind",
                "a github delivery needs the GitHub CLI `gh` on PATH (https://cli.github.com), authenticated with `gh auth login`".into(),
            ));
        }
    }
    Ok(())
}

/// True when an executable `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

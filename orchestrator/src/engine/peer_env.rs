//! The variables the peer gives every stage beyond the run's paths and ids: its package root
//! (most of its shipped pipelines run scripts from it), the node binary, the runtime mode in
//! three spellings, the repo-config policy and the design-config path. Decided once per
//! invocation; `RunState::run_env` adds them after the `CODEX_ORCHESTRATOR_*` values of the run.

use std::path::{Path, PathBuf};

use crate::config::package::Package;
use crate::env_vars as ev;

/// The peer's design pipeline when `DESIGN_TOOLKIT` is not set.
const DESIGN_REFERENCE_PIPELINE: &str = "design-reference";
/// The peer's design pipeline when `DESIGN_TOOLKIT` is set.
const HI_FI_TOOLKIT_PIPELINE: &str = "hi-fi-design-toolkit";

/// What the peer-defined stage variables are for this invocation.
#[derive(Debug, Clone, Default)]
pub struct PeerEnv {
    /// The peer's package, when found (`CODEX_ORCHESTRATOR_PACKAGE_ROOT`; unset otherwise).
    pub package: Option<Package>,
    /// `node` on `PATH` (`CODEX_ORCHESTRATOR_NODE_BIN`; unset when there is none).
    pub node_bin: Option<PathBuf>,
    /// The runtime mode in effect (`cli`).
    pub runtime_mode: String,
    /// `--repo-config-required` / `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED`, as decided.
    pub repo_config_required: bool,
    /// `<repo>/design.config.yaml` (the peer's `DESIGN_CONFIG_PATH`, set whether or not the
    /// file exists).
    pub design_config_path: PathBuf,
}

impl PeerEnv {
    /// The values for a run of `repo` in `runtime_mode`.
    pub fn new(
        repo: &Path,
        package: Option<Package>,
        runtime_mode: &str,
        repo_config_required: bool,
    ) -> PeerEnv {
        PeerEnv {
            package,
            node_bin: crate::config::package::node_bin(),
            runtime_mode: runtime_mode.to_owned(),
            repo_config_required,
            design_config_path: repo.join("design.config.yaml"),
        }
    }

    /// The variables for a stage of pipeline `pipeline_id`, in the peer's order.
    pub fn for_pipeline(&self, pipeline_id: &str) -> Vec<(String, String)> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut env = vec![(
            ev::DESIGN_CONFIG_PATH.to_owned(),
            s(&self.design_config_path),
        )];
        // The peer marks a run of its design pipeline so the design scripts know they run
        // inside it, unless the caller decided already.
        if pipeline_id == design_pipeline_id() && std::env::var_os(ev::DESIGN_PIPELINE).is_none() {
            env.push((ev::DESIGN_PIPELINE.to_owned(), "1".to_owned()));
        }
        for name in [
            ev::RUNTIME_MODE_ACTIVE,
            ev::RUNTIME_MODE,
            ev::CODEX_RUNTIME_MODE,
        ] {
            env.push((name.to_owned(), self.runtime_mode.clone()));
        }
        // The app-server session of the peer's other runtime: empty in `cli` mode.
        env.push((ev::APPSERVER_SESSION_ID.to_owned(), String::new()));
        env.push((
            ev::REPO_CONFIG_REQUIRED.to_owned(),
            if self.repo_config_required { "1" } else { "0" }.to_owned(),
        ));
        if let Some(p) = &self.package {
            env.push((ev::PACKAGE_ROOT.to_owned(), s(&p.root)));
        }
        if let Some(node) = &self.node_bin {
            env.push((ev::NODE_BIN.to_owned(), s(node)));
        }
        env
    }
}

impl PeerEnv {
    /// For a failed stage whose command uses the package root while no package was found:
    /// the one line its summary gets, saying why the variable is unset and how to fix it.
    pub fn missing_package_hint(&self, command: &str) -> Option<String> {
        (self.package.is_none() && command.contains(ev::PACKAGE_ROOT)).then(|| {
            "hint: CODEX_ORCHESTRATOR_PACKAGE_ROOT is unset: the peer package @kbediako/codex-orchestrator is not in node_modules of the repo or a parent, nor installed globally; install it (npm i -D @kbediako/codex-orchestrator) or set CODEX_ORCHESTRATOR_PACKAGE_ROOT".to_owned()
        })
    }
}

/// The peer's rule without its YAML config: `DESIGN_TOOLKIT` in the environment selects the
/// toolkit pipeline, otherwise the reference pipeline is the design pipeline.
fn design_pipeline_id() -> &'static str {
    if std::env::var_os("DESIGN_TOOLKIT").is_some() {
        HI_FI_TOOLKIT_PIPELINE
    } else {
        DESIGN_REFERENCE_PIPELINE
    }
}

//! Shell tooling generated from the same clap types the parser uses, so it cannot drift from
//! the real flags: completions (clap_complete) and the man page (clap_mangen).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::errors::AppError;
use crate::exit;

/// The name completions are registered for: the installed binary's.
const BIN: &str = "codex-orchestrator";

/// `completions <shell>`: the script on stdout.
pub fn completions(args: CompletionsArgs) -> Result<i32, AppError> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, BIN, &mut script);
    if args.shell == clap_complete::Shell::Bash {
        script = bash_states_spelled_once(&script);
    }
    crate::console::out_bytes(&script);
    Ok(exit::OK)
}

/// clap_complete's bash script spells a verb's state two ways when the binary's name has a
/// hyphen: `codex__orchestrator__subcmd__start` where it reads the words typed, but
/// `codex__subcmd__orchestrator__subcmd__start` in the arm that lists that verb's options
/// (clap-rs/clap#6421), so no option of any verb ever completed. One spelling: the one the
/// word loop produces.
fn bash_states_spelled_once(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("codex__subcmd__orchestrator", "codex__orchestrator")
        .into_bytes()
}

/// `man`: the roff page on stdout.
pub fn man() -> Result<i32, AppError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| AppError::Internal(format!("cannot render the man page: {e}")))?;
    crate::console::out_bytes(&page);
    Ok(exit::OK)
}

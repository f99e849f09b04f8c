//! `serve [--bind ADDR:PORT] [--open] [--token T]`: the web dashboard (see `crate::serve`).

use std::net::ToSocketAddrs;

use crate::cli::ServeArgs;
use crate::env_vars;
use crate::errors::AppError;
use crate::exit;
use crate::record::layout::Roots;

/// Runs `serve` until Ctrl-C; returns the exit code.
pub async fn serve(args: ServeArgs) -> Result<i32, AppError> {
    let roots = Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let bind = args
        .bind
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            AppError::Usage(format!(
                "--bind `{}`: expected ADDR:PORT, such as 127.0.0.1:7878",
                args.bind
            ))
        })?;
    let token = args
        .token
        .or_else(|| env_vars::non_blank(env_vars::SERVE_TOKEN));
    crate::serve::run(
        roots,
        crate::serve::ServeOptions {
            bind,
            token,
            open: args.open,
        },
    )
    .await?;
    Ok(exit::OK)
}

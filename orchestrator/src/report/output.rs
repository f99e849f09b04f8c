//! stdout is data only: the verbs print their results through these two names, which are
//! `console`'s (the one place that writes the process's stdout and stderr). A failed write
//! never panics: a broken pipe (`| head`) leaves the exit code as it is, any other failure
//! turns a success into exit 4 (see `console`).

pub use crate::console::{out_json as json, out_line as line};

//! `${NAME}` variables in commands, cwd and env values. Sources, first match wins: `--var`,
//! the pipeline's `vars`, then the environment (the runner's, plus the `CODEX_ORCHESTRATOR_*`
//! values of the run). `$$` is a literal `$`; any other `$` is left for the shell, and so is
//! a `${...}` that is not a plain name (`${VAR:-default}`, `${#VAR}`, `${1}`): those are shell
//! parameter expansions that peer configs use, and the shell expands them at run time.

/// A problem with a variable reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// No source defines it.
    #[error("undefined variable `${{{0}}}` (define it with --var {0}=VALUE, the pipeline's `vars`, or the environment)")]
    Undefined(String),
    /// `${` without `}`.
    #[error("unterminated `${{` (write `$$` for a literal `$`)")]
    Unterminated,
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `${NAME}` with `lookup(NAME)` and `$$` with `$`; other `${...}` stay as
/// they are, for the shell.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, VarError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or(VarError::Unterminated)?;
            let name = &tail[..end];
            if is_name(name) {
                out.push_str(&lookup(name).ok_or_else(|| VarError::Undefined(name.to_owned()))?);
            } else {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "LONG_name2" => Some("x y".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_braced_names_and_literal_dollars() {
        assert_eq!(
            expand("echo ${A} ${LONG_name2}", look).as_deref(),
            Ok("echo 1 x y")
        );
        assert_eq!(
            expand("cost $$5 and $HOME $1", look).as_deref(),
            Ok("cost $5 and $HOME $1")
        );
        assert_eq!(expand("$${A}", look).as_deref(), Ok("${A}"));
        assert_eq!(expand("tail $", look).as_deref(), Ok("tail $"));
    }

    #[test]
    fn rejects_undefined_and_malformed() {
        assert_eq!(
            expand("${NOPE}", look),
            Err(VarError::Undefined("NOPE".into()))
        );
        assert_eq!(expand("${A", look), Err(VarError::Unterminated));
    }

    #[test]
    fn shell_parameter_expansions_are_left_for_the_shell() {
        for text in [
            "${NOPE:-x}",
            "${#NOPE}",
            "${1}",
            "${A%.*}",
            "${}",
            "${A:+y} ${A}",
        ] {
            let expected = text.replace("} ${A}", "} 1");
            assert_eq!(
                expand(text, look).as_deref(),
                Ok(expected.as_str()),
                "{text}"
            );
        }
    }
}

//! Runner variables (`--var NAME=VALUE`, pipeline `vars`): their names, and `${NAME}` in a
//! stage's `cwd`.
//!
//! A stage's `command` is never rewritten: it reaches `sh -c` exactly as written, and runner
//! variables reach it through the environment, so `${NAME}`, `$NAME`, loop and local
//! variables and `$$` all mean what the shell says (as on the peer). `env` values are literal,
//! as on the peer. Only `cwd` is read by the runner rather than a shell, so only there does the
//! runner expand `${NAME}` itself, from the variables the stage sees.

/// A problem with a variable reference in `cwd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// No source defines it.
    #[error("undefined variable `${{{0}}}` (define it with --var {0}=VALUE, the pipeline's `vars`, the stage's `env`, or the environment)")]
    Undefined(String),
    /// `${` without `}`.
    #[error("unterminated `${{`")]
    Unterminated,
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `${NAME}` (a plain name) in a `cwd` with `lookup(NAME)`. Nothing else is
/// special: a path has no shell to interpret `$X`, `${X:-d}` or `$$`, so they stay as written.
pub fn expand_cwd(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, VarError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail.find('}').ok_or(VarError::Unterminated)?;
        let name = &tail[..end];
        if is_name(name) {
            out.push_str(&lookup(name).ok_or_else(|| VarError::Undefined(name.to_owned()))?);
        } else {
            out.push_str(&rest[i..i + 2 + end + 1]);
        }
        rest = &tail[end + 1..];
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
    fn expands_braced_names_only() {
        assert_eq!(
            expand_cwd("out/${A}/${LONG_name2}", look).as_deref(),
            Ok("out/1/x y")
        );
        for literal in ["$$", "$A", "${A:-x}", "${#A}", "${}", "tail $", "a$$b"] {
            assert_eq!(
                expand_cwd(literal, look).as_deref(),
                Ok(literal),
                "{literal}"
            );
        }
    }

    #[test]
    fn rejects_undefined_and_malformed() {
        assert_eq!(
            expand_cwd("${NOPE}", look),
            Err(VarError::Undefined("NOPE".into()))
        );
        assert_eq!(expand_cwd("${A", look), Err(VarError::Unterminated));
    }

    #[test]
    fn names() {
        assert!(is_name("_a1") && is_name("A"));
        assert!(!is_name("1a") && !is_name("") && !is_name("a-b"));
    }
}

//! Which environment variables hold secrets: the config's top-level `secrets` and the
//! `--secret NAME` flags, each a variable name or a `*` pattern (`*_TOKEN`, `AWS_*`).
//!
//! The values of the variables a stage gets whose names match are masked in everything the
//! runner records or prints of that stage (`exec::redact`); the stage itself gets them
//! unchanged. Names are checked when the config is read, so a typo such as `GITHUB TOKEN` is a
//! config error rather than a secret that silently matches nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Secret variable names and patterns, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretNames(Vec<String>);

impl SecretNames {
    /// Checked names, or the reason the first bad one is bad.
    pub fn parse<I, S>(raw: I) -> Result<SecretNames, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names = Vec::new();
        for r in raw {
            let r = r.as_ref();
            check(r)?;
            if !names.iter().any(|n| n == r) {
                names.push(r.to_owned());
            }
        }
        Ok(SecretNames(names))
    }

    /// These names followed by `more` (the command line's after the config's).
    pub fn with(&self, more: &SecretNames) -> SecretNames {
        let mut names = self.0.clone();
        for n in &more.0 {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        SecretNames(names)
    }

    /// No name at all: nothing is secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names and patterns, as given.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether variable `name` is secret.
    pub fn matches(&self, name: &[u8]) -> bool {
        self.0.iter().any(|p| glob(p.as_bytes(), name))
    }

    /// The secret values of an environment: the runner's own (`base`) with the stage's
    /// variables (`overlay`, applied in order, later wins) on top, as the stage gets it.
    pub fn values<K, V>(
        &self,
        base: impl IntoIterator<Item = (K, V)>,
        overlay: &[(String, String)],
    ) -> Vec<Vec<u8>>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        if self.is_empty() {
            return Vec::new();
        }
        let mut env: Vec<(Vec<u8>, Vec<u8>)> = base
            .into_iter()
            .filter(|(k, _)| self.matches(k.as_ref().as_bytes()))
            .map(|(k, v)| {
                (
                    k.as_ref().as_bytes().to_vec(),
                    v.as_ref().as_bytes().to_vec(),
                )
            })
            .collect();
        for (k, v) in overlay {
            env.retain(|(name, _)| name != k.as_bytes());
            if self.matches(k.as_bytes()) {
                env.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
            }
        }
        env.into_iter().map(|(_, v)| v).collect()
    }
}

/// A name is letters, digits and `_`, with `*` standing for any run of them; not only `*`
/// (every variable, PATH and HOME included, would be masked).
fn check(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("an empty name".to_owned());
    }
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '*'))
    {
        return Err(format!(
            "`{raw}` is not a variable name or pattern (`{c}`: only letters, digits, `_` and `*`)"
        ));
    }
    if raw.chars().all(|c| c == '*') {
        return Err(format!(
            "`{raw}` would make every variable secret; name them or use a pattern like `*_TOKEN`"
        ));
    }
    Ok(())
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.iter().position(|&b| b == b'*') {
        None => pattern == name,
        Some(star) => {
            let (head, rest) = (&pattern[..star], &pattern[star + 1..]);
            if !name.starts_with(head) {
                return false;
            }
            let name = &name[head.len()..];
            (0..=name.len()).any(|skip| glob(rest, &name[skip..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::SecretNames;

    #[test]
    fn names_and_patterns_match_variables() {
        let s = SecretNames::parse(["GITHUB_TOKEN", "*_KEY", "AWS_*_ID"]).expect("valid");
        for yes in ["GITHUB_TOKEN", "API_KEY", "_KEY", "AWS_ACCESS_KEY_ID"] {
            assert!(s.matches(yes.as_bytes()), "{yes}");
        }
        for no in ["GITHUB_TOKENS", "KEY", "API_KEYS", "PATH"] {
            assert!(!s.matches(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "*", "**", "GITHUB TOKEN", "A-B", "$X"] {
            assert!(SecretNames::parse([bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_come_from_the_stage_environment() {
        let s = SecretNames::parse(["*_TOKEN"]).expect("valid");
        let base = [
            (OsStr::new("A_TOKEN"), OsStr::new("from-runner")),
            (OsStr::new("B_TOKEN"), OsStr::new("old")),
            (OsStr::new("HOME"), OsStr::new("/home/x")),
        ];
        let overlay = vec![("B_TOKEN".to_owned(), "from-stage".to_owned())];
        let mut v = s.values(base, &overlay);
        v.sort();
        assert_eq!(v, [b"from-runner".to_vec(), b"from-stage".to_vec()]);
    }
}

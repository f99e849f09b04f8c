//! "Did you mean" hints for unknown keys and names.

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for &c in candidates {
        let d = if c.to_lowercase() == lower {
            0
        } else {
            levenshtein(&lower, &c.to_lowercase())
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    // Allow one edit per three characters, at least one: `dependson` -> `dependsOn`,
    // `comand` -> `command`, but not `foo` -> `env`.
    best.filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbouring characters is one edit (optimal string
/// alignment): `biuld` is one typo away from `build`, not two.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the distance table.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && ca == b[j - 1] && a[i - 1] == cb {
                cur[j + 1] = cur[j + 1].min(before[j - 1] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn hints_typos_only() {
        let keys = [
            "command",
            "cwd",
            "env",
            "dependsOn",
            "timeoutMs",
            "allowFailure",
        ];
        assert_eq!(did_you_mean("dependson", &keys), Some("dependsOn"));
        assert_eq!(did_you_mean("comand", &keys), Some("command"));
        assert_eq!(did_you_mean("timeout_ms", &keys), Some("timeoutMs"));
        assert_eq!(did_you_mean("allowfailures", &keys), Some("allowFailure"));
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
        // A swap of two neighbours is one typo.
        assert_eq!(did_you_mean("biuld", &["build", "test"]), Some("build"));
        assert_eq!(did_you_mean("cmomand", &keys), Some("command"));
    }
}

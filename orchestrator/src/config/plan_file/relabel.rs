//! A config error about a translated plan, in the plan's words: the config walk names a
//! pipeline, its stages and config fields (`dependsOn`, `timeoutMs`); the author of a plan
//! file wrote a plan, steps and `depends_on`, `timeout_sec`. Only the error's wording
//! changes: which input is refused, and why, is the config's decision.

use crate::config::ConfigError;

/// Config field -> the plan field it was translated from.
const FIELDS: &[(&str, &str)] = &[
    ("dependsOn", "depends_on"),
    ("title", "name"),
    ("timeoutMs", "timeout_sec"),
    ("allowFailure", "critical"),
    ("onFailure", "on_failure"),
    ("concurrency", "globals.max_concurrency"),
    ("stages", "steps"),
];

/// Config message -> the plan's wording (whole phrases, so nothing else is touched).
const PHRASES: &[(&str, &str)] = &[
    (
        "which is not a stage of this pipeline",
        "which is not a step of this plan",
    ),
    (
        "stages depend on each other in a cycle",
        "steps depend on each other in a cycle",
    ),
    (
        "a stage cannot depend on itself",
        "a step cannot depend on itself",
    ),
    (
        "duplicate stage id (ids must be unique in a pipeline, stage sets included)",
        "duplicate step id (ids must be unique in a plan)",
    ),
    (
        "(a command stage needs a shell command)",
        "(a step needs the program to run)",
    ),
];

/// `e` reworded for a plan file; errors other than [`ConfigError::Invalid`] are unchanged.
pub(super) fn relabel(e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid {
            path,
            location,
            message,
        } => ConfigError::Invalid {
            path,
            location: location_of(&location),
            message: PHRASES
                .iter()
                .fold(message, |m, (from, to)| m.replace(from, to)),
        },
        other => other,
    }
}

/// `pipeline `p`, stage `s`, field `dependsOn`` -> `plan `p`, step `s`, field `depends_on``.
/// Parts are rewritten only where a part starts (an id that itself contains ", stage `" is
/// read as two parts: the wording may then be off, never the decision).
fn location_of(location: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    // `Loc::render` joins parts with ", "; a part only starts where a known word follows.
    let starts = ["pipeline `", "stage `", "field `"];
    let mut rest = location;
    while !rest.is_empty() {
        let next = starts
            .iter()
            .filter_map(|s| rest[1..].find(&format!(", {s}")).map(|i| i + 1))
            .min();
        let (part, tail) = match next {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, ""),
        };
        parts.push(part_of(part));
        rest = tail;
    }
    parts.join(", ")
}

fn part_of(part: &str) -> String {
    if let Some(name) = part.strip_prefix("pipeline `") {
        return format!("plan `{name}");
    }
    if let Some(name) = part.strip_prefix("stage `") {
        return format!("step `{name}");
    }
    if let Some(name) = part
        .strip_prefix("field `")
        .and_then(|n| n.strip_suffix('`'))
    {
        if let Some((_, plan)) = FIELDS.iter().find(|(config, _)| *config == name) {
            return format!("field `{plan}`");
        }
    }
    part.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_speak_of_plans_and_steps() {
        assert_eq!(
            location_of("pipeline `p`, stage `s`, field `dependsOn`"),
            "plan `p`, step `s`, field `depends_on`"
        );
        assert_eq!(
            location_of("pipeline `p`, stage `#3`, field `args[1]`"),
            "plan `p`, step `#3`, field `args[1]`"
        );
        assert_eq!(location_of("top level"), "top level");
    }
}

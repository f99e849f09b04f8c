//! The run-control parts of a config: approval stages (`prompt`, `approvers`, `timeoutMs`,
//! `onTimeout`), resource `locks`, `maxWallClockMs` and `maxConcurrentRuns`. Same walker, same
//! messages as the rest of `load`: every error names the pipeline, stage and field.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{kind_of, Fields, Walker};
use crate::config::error::{ConfigError, Loc};
use crate::config::model::{ApprovalStage, OnTimeout};
use crate::config::suggest::did_you_mean;

/// Keys of an approval stage beyond the common ones.
pub(super) const APPROVAL_KEYS: &[&str] = &["prompt", "approvers", "timeoutMs", "onTimeout"];
const ON_TIMEOUT: &[&str] = &["reject", "approve"];
/// Longest lock name: it becomes a file name under `.runs/.locks/`.
const MAX_LOCK_NAME: usize = 100;

impl Walker {
    /// An approval stage's own fields.
    pub(super) fn approval(
        &self,
        obj: &Map<String, Value>,
        loc: &Loc,
    ) -> Result<ApprovalStage, ConfigError> {
        if obj.get("retries").is_some_and(|v| !v.is_null()) {
            return Err(self.err(
                &loc.field("retries"),
                "an approval stage is not retried (it waits for one decision)",
            ));
        }
        let prompt = self.req_string(obj, "prompt", loc, "an approval stage asks a question")?;
        let approvers = match obj.get("approvers") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let floc = loc.field("approvers");
                let mut names: Vec<String> = Vec::with_capacity(a.len());
                for v in a {
                    match v.as_str().map(str::trim) {
                        Some("") => return Err(self.err(&floc, "an approver name is empty")),
                        Some(name) if names.iter().any(|n| n == name) => {
                            return Err(self.err(&floc, format!("`{name}` is listed twice")))
                        }
                        Some(name) => names.push(name.to_owned()),
                        None => {
                            return Err(self.err(
                                &floc,
                                format!("expected actor names (strings), found {}", kind_of(v)),
                            ))
                        }
                    }
                }
                if names.is_empty() {
                    return Err(self.err(
                        &floc,
                        "empty: nobody could decide (leave `approvers` out to let anyone decide)",
                    ));
                }
                Some(names)
            }
            Some(other) => {
                return Err(self.err(
                    &loc.field("approvers"),
                    format!("expected an array of actor names, found {}", kind_of(other)),
                ))
            }
        };
        let timeout = self
            .opt_u64(obj, "timeoutMs", loc, 1)?
            .map(Duration::from_millis);
        let on_timeout = match self.opt_string(obj, "onTimeout", loc)?.as_deref() {
            None | Some("reject") => OnTimeout::Reject,
            Some("approve") => OnTimeout::Approve,
            Some(other) => {
                let hint = did_you_mean(other, ON_TIMEOUT)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(self.err(
                    &loc.field("onTimeout"),
                    format!("`{other}` is not one of: reject, approve{hint}"),
                ));
            }
        };
        Ok(ApprovalStage {
            prompt,
            approvers,
            timeout,
            on_timeout,
        })
    }

    /// `locks`: names, sorted and unique (the order they are taken in).
    pub(super) fn locks(
        &self,
        obj: &Map<String, Value>,
        loc: &Loc,
    ) -> Result<Vec<String>, ConfigError> {
        let floc = loc.field("locks");
        let list = match obj.get("locks") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(self.err(
                    &floc,
                    format!("expected an array of lock names, found {}", kind_of(other)),
                ))
            }
        };
        let mut names = Vec::with_capacity(list.len());
        for v in list {
            let Some(name) = v.as_str() else {
                return Err(self.err(
                    &floc,
                    format!("expected lock names (strings), found {}", kind_of(v)),
                ));
            };
            if !is_lock_name(name) {
                return Err(self.err(
                    &floc,
                    format!(
                        "`{name}` is not a lock name (1 to {MAX_LOCK_NAME} letters, digits, `.`, `_` or `-`, not starting with `.`)"
                    ),
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(self.err(&floc, format!("`{name}` is listed twice")));
            }
            names.push(name.to_owned());
        }
        names.sort();
        Ok(names)
    }

    /// A positive number of milliseconds, for `maxWallClockMs`.
    pub(super) fn opt_millis(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
    ) -> Result<Option<Duration>, ConfigError> {
        Ok(self.opt_u64(obj, key, loc, 1)?.map(Duration::from_millis))
    }
}

/// A lock name is used as a file name: plain characters only.
fn is_lock_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LOCK_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::model::StageKind;

    fn load(json: &str) -> Result<crate::config::Config, String> {
        crate::config::parse(Path::new("c.json"), json, false)
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    fn stage(extra: &str) -> String {
        format!(
            r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"approval","id":"ok","prompt":"Ship?"{extra}}}]}}]}}"#
        )
    }

    #[test]
    fn an_approval_stage_is_read_with_its_defaults() {
        let c = load(&stage("")).expect("valid");
        let StageKind::Approval(a) = &c.pipelines[0].stages[0].kind else {
            panic!("not an approval")
        };
        assert_eq!(a.prompt, "Ship?");
        assert_eq!((a.approvers.clone(), a.timeout), (None, None));
        assert_eq!(a.on_timeout, super::OnTimeout::Reject);
        let c = load(&stage(
            r#","approvers":["alice","bob"],"timeoutMs":500,"onTimeout":"approve""#,
        ))
        .expect("valid");
        let StageKind::Approval(a) = &c.pipelines[0].stages[0].kind else {
            panic!("not an approval")
        };
        assert_eq!(
            a.approvers.as_deref(),
            Some(&["alice".to_owned(), "bob".to_owned()][..])
        );
        assert_eq!(a.timeout, Some(std::time::Duration::from_millis(500)));
        assert_eq!(a.on_timeout, super::OnTimeout::Approve);
    }

    #[test]
    fn bad_approval_fields_are_rejected_naming_the_field() {
        let cases = [
            (
                r#","approvers":"alice""#,
                "field `approvers`: expected an array of actor names, found a string",
            ),
            (
                r#","approvers":[1]"#,
                "field `approvers`: expected actor names (strings), found a number",
            ),
            (r#","approvers":[]"#, "field `approvers`: empty"),
            (r#","approvers":["a","a"]"#, "`a` is listed twice"),
            (
                r#","onTimeout":"rejct""#,
                "field `onTimeout`: `rejct` is not one of: reject, approve; did you mean `reject`?",
            ),
            (
                r#","timeoutMs":0"#,
                "field `timeoutMs`: expected an integer >= 1, found 0",
            ),
            (
                r#","timeoutMs":"5s""#,
                "field `timeoutMs`: expected an integer >= 1, found a string",
            ),
            (
                r#","retries":2"#,
                "field `retries`: an approval stage is not retried",
            ),
        ];
        for (extra, want) in cases {
            let e = load(&stage(extra)).expect_err(extra);
            assert!(e.contains("pipeline `p`, stage `ok`"), "{e}");
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = load(r#"{"pipelines":[{"id":"p","stages":[{"kind":"approval","id":"ok"}]}]}"#)
            .expect_err("no prompt");
        assert!(e.contains("field `prompt`: missing"), "{e}");
    }

    #[test]
    fn locks_are_sorted_and_checked() {
        let c = load(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","locks":["z","db.main","a_1"]}]}]}"#)
            .expect("valid");
        assert_eq!(c.pipelines[0].stages[0].locks, ["a_1", "db.main", "z"]);
        for (locks, want) in [
            (r#""db""#, "expected an array of lock names, found a string"),
            ("[1]", "expected lock names (strings), found a number"),
            (r#"["a/b"]"#, "`a/b` is not a lock name"),
            (r#"[""]"#, "`` is not a lock name"),
            (r#"[".hidden"]"#, "`.hidden` is not a lock name"),
            (r#"["x","x"]"#, "`x` is listed twice"),
        ] {
            let json = format!(
                r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"command","id":"a","command":"true","locks":{locks}}}]}}]}}"#
            );
            let e = load(&json).expect_err(locks);
            assert!(e.contains("stage `a`, field `locks`"), "{e}");
            assert!(e.contains(want), "{locks}: {e}");
        }
    }

    #[test]
    fn budgets_and_run_slots_are_positive_integers() {
        let c = load(r#"{"maxConcurrentRuns":2,"pipelines":[{"id":"p","maxWallClockMs":1500,"stages":[{"kind":"command","id":"a","command":"true"}]}]}"#)
            .expect("valid");
        assert_eq!(c.max_concurrent_runs, Some(2));
        assert_eq!(
            c.pipelines[0].max_wall_clock,
            Some(std::time::Duration::from_millis(1500))
        );
        let e = load(r#"{"maxConcurrentRuns":0,"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#)
            .expect_err("zero");
        assert!(
            e.contains("`c.json`: field `maxConcurrentRuns`: expected an integer >= 1, found 0"),
            "{e}"
        );
        let e = load(r#"{"pipelines":[{"id":"p","maxWallClockMs":"30m","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#)
            .expect_err("a string");
        assert!(
            e.contains(
                "pipeline `p`, field `maxWallClockMs`: expected an integer >= 1, found a string"
            ),
            "{e}"
        );
    }
}

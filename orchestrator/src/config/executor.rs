//! `executor`: where a command stage's commands run. On a pipeline it is the default of its
//! command stages; on a stage it replaces that default.
//!
//! ```json
//! "executor": {"kind": "local"}                                   (the default)
//! "executor": {"kind": "ray", "address": "http://127.0.0.1:8265", "numCpus": 1, "numGpus": 0,
//!              "resources": {"tpu": 1}, "workingDir": ".", "excludes": ["data/"],
//!              "env": {"NAME": "value"}}
//! ```
//!
//! Every field is checked here, so a bad executor is a config error (exit 2) before anything
//! runs. The address may be overridden for every Ray stage by `CODEX_ORCHESTRATOR_RAY_ADDRESS`
//! ([`ray_address`], checked up front by the plan).

use std::path::Path;

use serde_json::{Map, Value};

use super::error::{list, ConfigError, Loc};
use super::json_get::{kind_of, show};
use super::suggest::did_you_mean;

/// Ray's default dashboard address (what `ray job submit` uses without `--address`).
pub const DEFAULT_RAY_ADDRESS: &str = "http://127.0.0.1:8265";

const KINDS: &[&str] = &["local", "ray"];
pub(crate) const LOCAL_KEYS: &[&str] = &["kind"];
pub(crate) const RAY_KEYS: &[&str] = &[
    "kind",
    "address",
    "numCpus",
    "numGpus",
    "resources",
    "workingDir",
    "excludes",
    "env",
];

/// Where commands run.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ExecutorConfig {
    /// A process group on this machine.
    #[default]
    Local,
    /// A job on a Ray cluster.
    Ray(Box<RayConfig>),
}

impl ExecutorConfig {
    /// `local` or `ray`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorConfig::Local => "local",
            ExecutorConfig::Ray(_) => "ray",
        }
    }
}

/// The fields of a Ray executor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RayConfig {
    /// `address`: the head's dashboard URL (http, or https with the `ray-tls` feature).
    pub address: Option<String>,
    /// `numCpus`: CPUs reserved for the command (Ray's `entrypoint_num_cpus`).
    pub num_cpus: Option<f64>,
    /// `numGpus`.
    pub num_gpus: Option<f64>,
    /// `resources`: custom resources, in file order.
    pub resources: Vec<(String, f64)>,
    /// `workingDir`: shipped as the job's working directory, relative to the repo root.
    pub working_dir: Option<String>,
    /// `excludes`: gitignore-style patterns left out of the package.
    pub excludes: Vec<String>,
    /// `env`: variables for the job, below the stage's own `env`.
    pub env: Vec<(String, String)>,
}

/// Parses the `executor` field of the pipeline or stage at `at` in the file `path`.
pub(crate) fn parse(v: &Value, at: &Loc, path: &Path) -> Result<ExecutorConfig, ConfigError> {
    let err = |loc: &Loc, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        location: loc.render(),
        message,
    };
    let loc = &Executor(at.field("executor"), at.clone());
    let Value::Object(obj) = v else {
        return Err(err(
            loc,
            format!(
                "expected an object such as {{\"kind\": \"ray\", ...}}, found {}",
                kind_of(v)
            ),
        ));
    };
    let kind = match obj.get("kind") {
        Some(Value::String(k)) => k.as_str(),
        None => {
            return Err(err(
                &loc.field("kind"),
                format!("missing (one of: {})", list(KINDS)),
            ))
        }
        Some(other) => {
            return Err(err(
                &loc.field("kind"),
                format!("expected a string, found {}", kind_of(other)),
            ))
        }
    };
    let known = match kind {
        "local" => LOCAL_KEYS,
        "ray" => RAY_KEYS,
        other => {
            let hint = did_you_mean(other, KINDS)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            return Err(err(
                &loc.field("kind"),
                format!("unknown executor `{other}` (one of: {}){hint}", list(KINDS)),
            ));
        }
    };
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            let hint = did_you_mean(key, RAY_KEYS)
                .filter(|k| known.contains(k))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            let why = if kind == "local" && RAY_KEYS.contains(&key.as_str()) {
                " (a local executor has no settings)".to_owned()
            } else {
                hint
            };
            return Err(err(&loc.field(key), format!("unknown key{why}")));
        }
    }
    if kind == "local" {
        return Ok(ExecutorConfig::Local);
    }
    let number = |key: &str| -> Result<Option<f64>, ConfigError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n >= 0.0 && n.is_finite() => Ok(Some(n)),
                _ => Err(err(
                    &loc.field(key),
                    format!("expected a number >= 0, found {}", show(v)),
                )),
            },
        }
    };
    let string = |key: &str| -> Result<Option<String>, ConfigError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(err(&loc.field(key), "must not be empty".into())),
            Some(v) => Err(err(
                &loc.field(key),
                format!("expected a string, found {}", kind_of(v)),
            )),
        }
    };
    let address = string("address")?;
    if let Some(a) = &address {
        check_address(a).map_err(|m| err(&loc.field("address"), m))?;
    }
    let working_dir = string("workingDir")?;
    if let Some(w) = &working_dir {
        if Path::new(w).is_absolute() {
            return Err(err(
                &loc.field("workingDir"),
                format!("`{w}` must be relative to the repo root"),
            ));
        }
    }
    let resources = match map(obj, "resources", loc, path)? {
        None => Vec::new(),
        Some(m) => {
            let mut out = Vec::new();
            for (k, v) in m {
                match v.as_f64() {
                    Some(n) if n >= 0.0 && n.is_finite() => out.push((k.clone(), n)),
                    _ => {
                        return Err(err(
                            &loc.field(&format!("resources.{k}")),
                            format!("expected a number >= 0, found {}", show(v)),
                        ))
                    }
                }
            }
            out
        }
    };
    let excludes = match obj.get("excludes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for p in a {
                match p.as_str() {
                    Some(s) => {
                        exec::ray::check_exclude(s).map_err(|e| {
                            err(&loc.field("excludes"), format!("pattern `{s}`: {e}"))
                        })?;
                        out.push(s.to_owned());
                    }
                    None => {
                        return Err(err(
                            &loc.field("excludes"),
                            format!("expected patterns (strings), found {}", kind_of(p)),
                        ))
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(err(
                &loc.field("excludes"),
                format!("expected an array of patterns, found {}", kind_of(other)),
            ))
        }
    };
    let env = match map(obj, "env", loc, path)? {
        None => Vec::new(),
        Some(m) => {
            let mut out = Vec::new();
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(err(
                            &loc.field(&format!("env.{k}")),
                            format!("expected a string, found {}", kind_of(other)),
                        ))
                    }
                };
                out.push((k.clone(), s));
            }
            out
        }
    };
    Ok(ExecutorConfig::Ray(Box::new(RayConfig {
        address,
        num_cpus: number("numCpus")?,
        num_gpus: number("numGpus")?,
        resources,
        working_dir,
        excludes,
        env,
    })))
}

/// Locations inside `executor`: `field `executor``, and `field `executor.<key>`` for its keys.
struct Executor(Loc, Loc);

impl std::ops::Deref for Executor {
    type Target = Loc;
    fn deref(&self) -> &Loc {
        &self.0
    }
}

impl Executor {
    fn field(&self, key: &str) -> Loc {
        self.1.field(&format!("executor.{key}"))
    }
}

fn map<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    loc: &Executor,
    path: &Path,
) -> Result<Option<&'v Map<String, Value>>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(ConfigError::Invalid {
            path: path.to_owned(),
            location: loc.field(key).render(),
            message: format!("expected an object, found {}", kind_of(other)),
        }),
    }
}

/// Checks a Ray address: `http://host[:port][/path]`, or `https://` when built with TLS.
pub fn check_address(a: &str) -> Result<(), String> {
    let rest = if let Some(r) = a.strip_prefix("http://") {
        r
    } else if let Some(r) = a.strip_prefix("https://") {
        if !cfg!(feature = "ray-tls") {
            return Err(format!(
                "`{a}`: https needs a build with the cargo feature `ray-tls`"
            ));
        }
        r
    } else {
        return Err(format!(
            "`{a}` is not an http:// address of a Ray dashboard (such as {DEFAULT_RAY_ADDRESS})"
        ));
    };
    let host_port = rest.split('/').next().unwrap_or("");
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (host_port, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok || rest.contains(['?', '#', ' ', '@']) {
        return Err(format!("`{a}` is not a valid address (http://host:port)"));
    }
    Ok(())
}

/// The address a Ray stage uses: `CODEX_ORCHESTRATOR_RAY_ADDRESS` when set, else the config's,
/// else [`DEFAULT_RAY_ADDRESS`]. `Err` names the variable when its value is not an address.
pub fn ray_address(ray: &RayConfig) -> Result<String, String> {
    let var = crate::env_vars::RAY_ADDRESS;
    if let Some(a) = crate::env_vars::non_blank(var) {
        let a = a.trim().to_owned();
        check_address(&a).map_err(|m| format!("{var}: {m}"))?;
        return Ok(a);
    }
    Ok(ray
        .address
        .clone()
        .unwrap_or_else(|| DEFAULT_RAY_ADDRESS.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(json: &str) -> Result<ExecutorConfig, String> {
        let v: Value = serde_json::from_str(json).expect("json");
        parse(&v, &Loc::root().with("pipeline", "p"), Path::new("c.json"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_ray_executor_parses() {
        let e = parse_str(
            r#"{"kind":"ray","address":"http://10.0.0.1:8265","numCpus":0.5,"numGpus":1,
                "resources":{"tpu":2},"workingDir":"app","excludes":["*.bin","data/"],"env":{"A":"1","B":2}}"#,
        )
        .expect("valid");
        let ExecutorConfig::Ray(r) = e else {
            panic!("ray")
        };
        assert_eq!(r.address.as_deref(), Some("http://10.0.0.1:8265"));
        assert_eq!((r.num_cpus, r.num_gpus), (Some(0.5), Some(1.0)));
        assert_eq!(r.resources, [("tpu".to_owned(), 2.0)]);
        assert_eq!(r.working_dir.as_deref(), Some("app"));
        assert_eq!(r.excludes, ["*.bin", "data/"]);
        assert_eq!(r.env, [("A".into(), "1".into()), ("B".into(), "2".into())]);
        assert_eq!(parse_str(r#"{"kind":"local"}"#), Ok(ExecutorConfig::Local));
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (r#""ray""#, "`c.json`: pipeline `p`, field `executor`: expected an object such as {\"kind\": \"ray\", ...}, found a string"),
            (r#"{}"#, "`c.json`: pipeline `p`, field `executor.kind`: missing (one of: `local`, `ray`)"),
            (r#"{"kind":"rey"}"#, "`c.json`: pipeline `p`, field `executor.kind`: unknown executor `rey` (one of: `local`, `ray`); did you mean `ray`?"),
            (r#"{"kind":"ray","numCPUs":1}"#, "`c.json`: pipeline `p`, field `executor.numCPUs`: unknown key (did you mean `numCpus`?)"),
            (r#"{"kind":"local","address":"http://x:1"}"#, "`c.json`: pipeline `p`, field `executor.address`: unknown key (a local executor has no settings)"),
            (r#"{"kind":"ray","numCpus":-1}"#, "`c.json`: pipeline `p`, field `executor.numCpus`: expected a number >= 0, found -1"),
            (r#"{"kind":"ray","numGpus":"1"}"#, "`c.json`: pipeline `p`, field `executor.numGpus`: expected a number >= 0, found a string"),
            (r#"{"kind":"ray","resources":{"tpu":"x"}}"#, "`c.json`: pipeline `p`, field `executor.resources.tpu`: expected a number >= 0, found a string"),
            (r#"{"kind":"ray","address":"127.0.0.1:8265"}"#, "`c.json`: pipeline `p`, field `executor.address`: `127.0.0.1:8265` is not an http:// address of a Ray dashboard (such as http://127.0.0.1:8265)"),
            (r#"{"kind":"ray","address":"http://h:99999"}"#, "`c.json`: pipeline `p`, field `executor.address`: `http://h:99999` is not a valid address (http://host:port)"),
            (r#"{"kind":"ray","workingDir":"/abs"}"#, "`c.json`: pipeline `p`, field `executor.workingDir`: `/abs` must be relative to the repo root"),
            (r#"{"kind":"ray","excludes":"x"}"#, "`c.json`: pipeline `p`, field `executor.excludes`: expected an array of patterns, found a string"),
            (r#"{"kind":"ray","env":{"A":[]}}"#, "`c.json`: pipeline `p`, field `executor.env.A`: expected a string, found an array"),
        ];
        for (json, want) in cases {
            assert_eq!(parse_str(json).expect_err(json), want, "{json}");
        }
    }

    #[test]
    fn addresses() {
        for ok in [
            "http://127.0.0.1:8265",
            "http://ray-head.ns.svc:8265/",
            "http://h",
            "http://[::1]:8265",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://h",
            "http://",
            "http://h:0",
            "http://h:x",
            "http://u@h:1",
            "http://h 1",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_address("https://h:443").is_ok(),
            cfg!(feature = "ray-tls")
        );
    }
}

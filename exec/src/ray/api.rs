//! The Ray Jobs REST API as the backend uses it (checked against Ray 2.60): packages, job
//! submission, status, stop, logs, the WebSocket log tail and the nodes' resources. Every
//! request has a connect timeout and a total timeout, so an unreachable head is an error in
//! bounded time, never a hang. Error bodies are `text/plain` (usually a Python traceback): the
//! last meaningful line is kept as the message.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an ordinary request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Uploading a package (up to Ray's 100 MiB limit) or reading a whole log.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No answer: connection refused or reset, DNS, timeout. The head is unreachable.
    #[error("{0}")]
    Transport(String),
    /// The head answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Last meaningful line of the body.
        message: String,
    },
    /// The head answered something we cannot read.
    #[error("unexpected answer from {what}: {message}")]
    Decode {
        /// Which call.
        what: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl ApiError {
    /// True when the head could not be reached at all (rather than answering an error).
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, ApiError::Transport(_))
    }
}

/// The reason of a transport error without reqwest's URL prefix, and with the innermost
/// cause (`Connection refused (os error 111)`), which is the useful part.
fn transport(e: &reqwest::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        format!(
            "cannot connect ({})",
            innermost.unwrap_or_else(|| e.to_string())
        )
    } else {
        innermost.unwrap_or_else(|| e.to_string())
    };
    ApiError::Transport(what)
}

/// The last meaningful line of a text/plain error body (a traceback's message).
fn last_line(body: &str) -> String {
    body.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && *l != ".")
        .unwrap_or("(empty body)")
        .chars()
        .take(500)
        .collect()
}

/// `POST /api/jobs/`: what a job is (only the fields we use; nulls are not sent).
#[derive(Debug, Serialize)]
pub(crate) struct SubmitRequest<'a> {
    pub(crate) entrypoint: &'a str,
    pub(crate) submission_id: &'a str,
    pub(crate) runtime_env: Value,
    pub(crate) metadata: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entrypoint_num_cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entrypoint_num_gpus: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) entrypoint_resources: BTreeMap<String, f64>,
}

/// A job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum JobStatus {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Stopped | JobStatus::Succeeded | JobStatus::Failed
        )
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }
}

/// `GET /api/jobs/{id}` (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JobDetails {
    pub(crate) status: JobStatus,
    #[serde(default)]
    pub(crate) entrypoint: String,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) error_type: Option<String>,
    #[serde(default)]
    pub(crate) driver_node_id: Option<String>,
    #[serde(default)]
    pub(crate) driver_exit_code: Option<i32>,
    #[serde(default)]
    pub(crate) runtime_env: Option<Value>,
    /// What the submitter put there (ours: run, stage, attempt, the package's digest).
    #[serde(default)]
    pub(crate) metadata: Option<BTreeMap<String, String>>,
}

/// One node's total resources (`GET /api/v0/nodes`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Node {
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) resources_total: BTreeMap<String, f64>,
}

/// A client of one Ray head.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// `http://host:port` (no trailing slash).
    base: String,
}

impl Client {
    /// A client for the head at `address` (`http://` or `https://`, validated by the caller).
    pub(crate) fn new(address: &str) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A head is usually inside the cluster or on loopback: an HTTP_PROXY of the CI
            // must not capture it.
            .no_proxy()
            .build()
            .map_err(|e| transport(&e))?;
        Ok(Client {
            http,
            base: address.trim_end_matches('/').to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let resp = req.send().await.map_err(|e| transport(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Err(ApiError::Status {
            status,
            message: last_line(&body),
        })
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let resp = self.send(req).await?;
        let bytes = resp.bytes().await.map_err(|e| transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            what,
            message: e.to_string(),
        })
    }

    /// The alive nodes' total resources.
    pub(crate) async fn nodes(&self) -> Result<Vec<Node>, ApiError> {
        let v: Value = self
            .json(
                "GET /api/v0/nodes",
                self.http.get(self.url("/api/v0/nodes?detail=true")),
            )
            .await?;
        let list = v
            .pointer("/data/result/result")
            .cloned()
            .unwrap_or(Value::Null);
        let nodes: Vec<Node> = serde_json::from_value(list).map_err(|e| ApiError::Decode {
            what: "GET /api/v0/nodes",
            message: e.to_string(),
        })?;
        Ok(nodes.into_iter().filter(|n| n.state == "ALIVE").collect())
    }

    /// `GET /api/packages/gcs/{name}`: true when the package is there. The call also pins it
    /// on the head for 10 minutes, so it survives until the job that uses it starts.
    pub(crate) async fn package_exists(&self, name: &str) -> Result<bool, ApiError> {
        let url = self.url(&format!("/api/packages/gcs/{name}"));
        match self.send(self.http.get(url)).await {
            Ok(_) => Ok(true),
            Err(ApiError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PUT /api/packages/gcs/{name}` with the zip's bytes.
    pub(crate) async fn put_package(&self, name: &str, zip: Vec<u8>) -> Result<(), ApiError> {
        let url = self.url(&format!("/api/packages/gcs/{name}"));
        let req = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(TRANSFER_TIMEOUT)
            .body(zip);
        self.send(req).await.map(drop)
    }

    /// `POST /api/jobs/`.
    pub(crate) async fn submit(&self, req: &SubmitRequest<'_>) -> Result<(), ApiError> {
        let body = serde_json::to_vec(req).map_err(|e| ApiError::Decode {
            what: "the job request",
            message: e.to_string(),
        })?;
        let req = self
            .http
            .post(self.url("/api/jobs/"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(req).await.map(drop)
    }

    /// `GET /api/jobs/{id}`; `None` when the head does not know the job.
    pub(crate) async fn job(&self, id: &str) -> Result<Option<JobDetails>, ApiError> {
        let req = self.http.get(self.url(&format!("/api/jobs/{id}")));
        match self.json("GET /api/jobs/{id}", req).await {
            Ok(j) => Ok(Some(j)),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/jobs/{id}/stop`. For a PENDING job Ray answers `stopped: true` but stops it
    /// only once it would start (ray-project/ray#58353): the caller keeps watching.
    pub(crate) async fn stop(&self, id: &str) -> Result<(), ApiError> {
        let req = self.http.post(self.url(&format!("/api/jobs/{id}/stop")));
        self.send(req).await.map(drop)
    }

    /// `GET /api/jobs/{id}/logs`: the whole driver log (Ray answers 500 if it holds a byte
    /// that is not UTF-8; the wrapper's records are ASCII, so ours never do).
    pub(crate) async fn logs(&self, id: &str) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Logs {
            logs: String,
        }
        let req = self
            .http
            .get(self.url(&format!("/api/jobs/{id}/logs")))
            .timeout(TRANSFER_TIMEOUT);
        let logs: Logs = self.json("GET /api/jobs/{id}/logs", req).await?;
        Ok(logs.logs)
    }

    /// The URL of the WebSocket log tail of job `id` (`ws://` or `wss://`).
    pub(crate) fn tail_url(&self, id: &str) -> String {
        let ws = match self.base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!(
                "ws://{}",
                self.base.strip_prefix("http://").unwrap_or(&self.base)
            ),
        };
        format!("{ws}/api/jobs/{id}/logs/tail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceback_becomes_its_last_line() {
        let body = "Traceback (most recent call last):\n  File \"x.py\"\nValueError: Job with submission_id a already exists. Please use a different submission_id.\n\n";
        assert_eq!(
            last_line(body),
            "ValueError: Job with submission_id a already exists. Please use a different submission_id."
        );
        assert_eq!(last_line(""), "(empty body)");
    }

    #[test]
    fn tail_urls_follow_the_scheme() {
        let c = Client::new("http://127.0.0.1:8265/").expect("client");
        assert_eq!(c.tail_url("a"), "ws://127.0.0.1:8265/api/jobs/a/logs/tail");
        let c = Client::new("https://ray.example:443/prefix").expect("client");
        assert_eq!(
            c.tail_url("b"),
            "wss://ray.example:443/prefix/api/jobs/b/logs/tail"
        );
    }
}

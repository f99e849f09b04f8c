//! End-to-end tests: the real binary in temp directories. One test binary (faster to link);
//! modules group the tests by feature.

mod control_util;
mod harness;
mod peer;
mod pty;
mod ray_head;
mod record;

mod approvals;
mod bad_input;
mod compat;
mod control_requests;
mod crash;
mod crash_points;
mod cross;
mod dead_output;
mod deep;
mod display;
mod graph;
mod history;
mod names;
mod numbers;
mod package;
mod panic;
mod peer_flags;
mod ray;
mod resource_locks;
mod resume;
mod run_basics;
mod run_limits;
mod serve;
mod shell;
mod side_files;
mod signals;
mod status_plan;
mod tooling;
mod verbs;

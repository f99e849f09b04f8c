//! End-to-end tests: the real binary in temp directories. One test binary (faster to link);
//! modules group the tests by feature.

mod harness;
mod peer;
mod pty;
mod ray_head;
mod record;

mod bad_input;
mod compat;
mod crash;
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
mod resume;
mod run_basics;
mod serve;
mod shell;
mod signals;
mod status_plan;
mod tooling;
mod verbs;

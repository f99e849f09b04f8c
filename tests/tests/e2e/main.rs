//! End-to-end tests: the real binary in temp directories. One test binary (faster to link);
//! modules group the tests by feature.

mod harness;
mod pty;
mod ray_head;
mod record;

mod bad_input;
mod crash;
mod crash_points;
mod dead_output;
mod deep;
mod graph;
mod history;
mod names;
mod numbers;
mod panic;
mod ray;
mod resume;
mod run_basics;
mod serve;
mod shell;
mod signals;
mod status_plan;
mod verbs;

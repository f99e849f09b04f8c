//! Telling: live progress on stderr, diagnostics (`tracing`), the `events.jsonl` stream, JUnit
//! reports, a run's status view (with what it waits for) and stdout for data.

pub mod display;
pub mod events;
pub mod exec_stream;
pub mod junit;
pub mod live;
pub mod logging;
pub mod output;
pub mod progress;
pub mod status;
pub mod style;
pub mod summary;
pub mod waiting;

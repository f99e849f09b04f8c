//! Micro-benchmark of the hot path of stage output: splitting reads into chunk payloads,
//! base64 for non-UTF-8, and writing the ndjson lines (stage log + runner reference). Reported
//! as throughput (MB/s of stage output) for text and for binary output.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use exec::{log_output_for_bench, RunnerLog, StageLog};

const SIZE: usize = 8 * 1024 * 1024;
const READ: usize = 64 * 1024;

fn bench(c: &mut Criterion) {
    let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog 0123456789\n"
        .iter()
        .copied()
        .cycle()
        .take(SIZE)
        .collect();
    // xorshift noise: mostly invalid UTF-8, the worst case (base64).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let binary: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut group = c.benchmark_group("chunk_encoding");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.sample_size(10);
    for (name, data) in [("text", &text), ("binary", &binary)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                // /dev/null keeps the disk out of the figure: this measures encoding.
                let runner = RunnerLog::open(std::path::Path::new("/dev/null")).expect("runner");
                let mut log = StageLog::open(
                    std::path::Path::new("/dev/null"),
                    1,
                    runner,
                    "commands/01-x.ndjson".into(),
                )
                .expect("log");
                log_output_for_bench(&mut log, data, READ).expect("encode")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

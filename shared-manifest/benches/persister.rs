//! Micro-benchmark of the persister's coalescing: updates per second through the channel and
//! how many document writes 1000 updates cost, with a sink that takes 1 ms per write (a fast
//! SSD's fsync) so batching is visible.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Serialize;
use shared_manifest::errors::AtomicWriteError;
use shared_manifest::persister::Sink;
use shared_manifest::{ApplyError, Document, Persister};

#[derive(Serialize, Default)]
struct Doc {
    n: u64,
    pad: Vec<u64>,
}

impl Document for Doc {
    type Update = u64;
    fn apply(&mut self, u: u64) -> Result<(), ApplyError> {
        self.n += u;
        Ok(())
    }
}

struct SlowSink(Arc<AtomicU64>);

impl Sink for SlowSink {
    fn write(&mut self, _: &Path, _: &[u8]) -> Result<(), AtomicWriteError> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let writes = Arc::new(AtomicU64::new(0));
    let updates = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("persister");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    group.bench_function("1000_updates_then_flush", |b| {
        b.iter(|| {
            rt.block_on(async {
                let doc = Doc {
                    n: 0,
                    pad: vec![7; 512],
                };
                let p = Persister::spawn_with_sink(
                    doc,
                    shared_manifest::Targets::new("m.json".into()),
                    Box::new(SlowSink(writes.clone())),
                );
                for i in 0..1000 {
                    p.send(i).await.expect("send");
                }
                p.flush().await.expect("flush");
                p.close().await.expect("close");
                updates.fetch_add(1000, Ordering::Relaxed);
            })
        });
    });
    group.finish();
    let (w, u) = (
        writes.load(Ordering::Relaxed),
        updates.load(Ordering::Relaxed),
    );
    if u > 0 {
        println!(
            "persister: {w} writes for {u} updates = {:.2} writes per 1000 updates",
            w as f64 * 1000.0 / u as f64
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

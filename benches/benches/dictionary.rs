//! What's measured: rebuilding a dictionary of 1M user ids shaped like the M
//! dataset's (`u_` and 16 hex digits), as open does from a snapshot
//! (`Dictionary::try_push`, which refuses a repeated name) and as the
//! sequencer does for names it already looked up (`Dictionary::push`), and
//! looking every id up again (`Dictionary::get`). At M, open rebuilds 10M of
//! them.
//!
//! Run with: `cargo bench -p nudge-benches --bench dictionary`

#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use nudge_engine::internals::dict::Dictionary;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const NAMES: usize = 1_000_000;

fn names() -> Vec<String> {
    // A fixed odd multiplier spreads the ids over 64 bits, like hashed ids.
    (0..NAMES as u64).map(|i| format!("u_{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect()
}

fn dictionary(c: &mut Criterion) {
    let names = names();
    let mut group = c.benchmark_group("dictionary_1m_user_ids");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(NAMES as u64));
    group.bench_function("try_push_like_open", |b| {
        b.iter(|| {
            let mut dict = Dictionary::with_capacity(NAMES);
            for name in &names {
                assert!(dict.try_push(name).is_some());
            }
            dict.len()
        })
    });
    group.bench_function("push", |b| {
        b.iter(|| {
            let mut dict = Dictionary::with_capacity(NAMES);
            for name in &names {
                dict.push(name);
            }
            dict.len()
        })
    });
    let mut built = Dictionary::with_capacity(NAMES);
    for name in &names {
        built.push(name);
    }
    group.bench_function("get", |b| {
        b.iter(|| names.iter().filter(|name| built.get(name).is_some()).count())
    });
    group.finish();
}

criterion_group!(benches, dictionary);
criterion_main!(benches);

//! Pressure faults: a separate `mcpstorm hog` process that takes memory (every page touched,
//! so it is really resident) and burns CPU threads for a while, squeezing the server's
//! machine. It runs as its own process so mcpstorm's own figures are not disturbed.

use std::time::{Duration, Instant};

/// Hold `memory_mb` of resident memory and spin `cpu_threads` threads for `duration`.
/// Blocking; meant to be the whole life of the hog process.
pub fn hog(memory_mb: u64, cpu_threads: u32, duration: Duration) {
    let deadline = Instant::now() + duration;
    let bytes = (memory_mb as usize).saturating_mul(1024 * 1024);
    let mut held: Vec<u8> = Vec::new();
    if held.try_reserve_exact(bytes).is_ok() {
        held.resize(bytes, 0);
        // Zeroed pages may be shared copy-on-write: write to every page to make it ours.
        for page in held.chunks_mut(4096) {
            page[0] = 1;
        }
    }
    let spinners: Vec<_> = (0..cpu_threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut x: u64 = 1;
                while Instant::now() < deadline {
                    for _ in 0..10_000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(left);
    for s in spinners {
        let _ = s.join();
    }
    std::hint::black_box(&held);
}

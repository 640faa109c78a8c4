//! Resource figures of processes: our own CPU and peak memory from `getrusage`, and a
//! target process's RSS and CPU from `/proc` (Linux).

use std::time::{Duration, Instant};

/// CPU seconds (user + system) and peak RSS of this process so far.
pub fn self_usage() -> (f64, f64) {
    // SAFETY: getrusage fills the struct we pass and has no other effect.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu_pct: Option<f64>,
}

/// Samples one process's RSS and CPU share between calls.
pub struct ProcSampler {
    pid: u32,
    last: Option<(Instant, u64)>,
    ticks_per_s: f64,
    page: u64,
}

impl ProcSampler {
    pub fn new(pid: u32) -> Self {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        Self {
            pid,
            last: None,
            ticks_per_s: ticks,
            page,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn sample(&mut self) -> Option<Sample> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the `(comm)` part; utime and stime are the 12th and 13th of those.
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let now = Instant::now();
        let cpu_pct = self.last.map(|(t, prev)| {
            let wall = now
                .duration_since(t)
                .max(Duration::from_millis(1))
                .as_secs_f64();
            (ticks.saturating_sub(prev) as f64 / self.ticks_per_s) / wall * 100.0
        });
        self.last = Some((now, ticks));
        Some(Sample {
            rss_bytes: rss_pages * self.page,
            cpu_pct,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let mut s = ProcSampler::new(std::process::id());
        let first = s.sample().expect("/proc is readable");
        assert!(first.rss_bytes > 1_000_000);
        assert!(first.cpu_pct.is_none());
        assert!(s.sample().and_then(|x| x.cpu_pct).is_some());
        let (cpu, rss) = self_usage();
        assert!(cpu > 0.0 && rss > 1.0);
    }
}

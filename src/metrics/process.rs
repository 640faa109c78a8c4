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

/// This process's resident memory now, from `/proc/self/statm` (Linux; `None` elsewhere).
pub fn self_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(pages * page)
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu_pct: Option<f64>,
    pub threads: u64,
    pub open_files: u64,
    /// Established TCP connections held by the tree: for an HTTP server, its live clients.
    pub connections: u64,
}

/// Samples a process and all its descendants (the server's whole tree): summed RSS,
/// threads and open files, and the CPU share of the tree between two samples.
pub struct ProcSampler {
    pid: u32,
    last: Option<(Instant, u64)>,
    ticks_per_s: f64,
    page: u64,
}

/// One process's figures from /proc: (parent pid, RSS pages, CPU ticks, threads).
fn read_proc(pid: u32) -> Option<(u32, u64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)` part: state is the 1st, ppid the 2nd, utime and stime the
    // 12th and 13th, num_threads the 18th, rss (pages) the 22nd.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    Some((num(1)? as u32, num(21)?, num(11)? + num(12)?, num(17)?))
}

/// The pid and every descendant of it, found through parent links in /proc.
fn tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            && let Some((ppid, ..)) = read_proc(pid)
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
}

/// How many of these socket inodes are established TCP connections (/proc/net/tcp{,6}).
fn established(inodes: &std::collections::HashSet<String>) -> u64 {
    if inodes.is_empty() {
        return 0;
    }
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Columns: sl local rem st ... inode (the 10th); state 01 is ESTABLISHED.
            if f.get(3) == Some(&"01") && f.get(9).is_some_and(|i| inodes.contains(*i)) {
                n += 1;
            }
        }
    }
    n
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
        read_proc(self.pid)?;
        let (mut rss, mut ticks, mut threads, mut open_files) = (0, 0, 0, 0);
        let mut sockets = std::collections::HashSet::new();
        for pid in tree(self.pid) {
            if let Some((_, r, t, th)) = read_proc(pid) {
                rss += r;
                ticks += t;
                threads += th;
                for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    open_files += 1;
                    if let Ok(link) = std::fs::read_link(fd.path())
                        && let Some(inode) = link
                            .to_str()
                            .and_then(|l| l.strip_prefix("socket:["))
                            .and_then(|l| l.strip_suffix(']'))
                    {
                        sockets.insert(inode.to_string());
                    }
                }
            }
        }
        let connections = established(&sockets);
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
            rss_bytes: rss * self.page,
            cpu_pct,
            threads,
            open_files,
            connections,
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
        assert!(first.threads >= 1 && first.open_files >= 3, "{first:?}");
        assert!(first.cpu_pct.is_none());
        assert!(s.sample().and_then(|x| x.cpu_pct).is_some());
        let (cpu, rss) = self_usage();
        assert!(cpu > 0.0 && rss > 1.0);
    }

    #[test]
    fn own_rss_grows_with_touched_memory() {
        let before = self_rss_bytes().expect("/proc/self/statm is readable");
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = self_rss_bytes().unwrap();
        assert!(after >= before + (48 << 20), "{before} -> {after}");
        drop(block);
    }
}

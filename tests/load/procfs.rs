//! Resident memory and CPU time of a process (the gateway, or the generator itself) read from
//! /proc, to turn "RSS under load" into bytes per connection and CPU ticks into % of a core.

use std::fs;
use std::io;
use std::time::Instant;

use crate::sys;

/// A process to sample: `/proc/<pid>` or `/proc/self`.
#[derive(Clone, Debug)]
pub struct Proc {
    dir: String,
    pub pid: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub rss_bytes: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub threads: u64,
}

impl Proc {
    pub fn pid(pid: u32) -> Self {
        Self {
            dir: format!("/proc/{pid}"),
            pid: Some(pid),
        }
    }

    pub fn current() -> Self {
        Self {
            dir: "/proc/self".to_owned(),
            pid: None,
        }
    }

    pub fn sample(&self) -> io::Result<Sample> {
        let at = Instant::now();
        let status = fs::read_to_string(format!("{}/status", self.dir))?;
        let stat = fs::read_to_string(format!("{}/stat", self.dir))?;
        let status = parse_status(&status).ok_or_else(|| bad("status"))?;
        let cpu_ticks = parse_stat_cpu(&stat).ok_or_else(|| bad("stat"))?;
        Ok(Sample {
            at,
            rss_bytes: status.rss_kb * 1024,
            cpu_ticks,
            threads: status.threads,
        })
    }

    /// The soft limit on open files of the process.
    pub fn open_files_limit(&self) -> io::Result<Option<u64>> {
        let limits = fs::read_to_string(format!("{}/limits", self.dir))?;
        Ok(parse_nofile_limit(&limits))
    }
}

fn bad(file: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected /proc/<pid>/{file}"),
    )
}

/// CPU used between two samples, in % of one core (200% = both cores of a 2-core machine).
pub fn cpu_percent(from: &Sample, to: &Sample) -> f64 {
    let secs = to.at.duration_since(from.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    let ticks = to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64;
    ticks / sys::clock_ticks_per_sec() as f64 / secs * 100.0
}

#[derive(Debug, PartialEq, Eq)]
struct Status {
    rss_kb: u64,
    threads: u64,
}

fn parse_status(text: &str) -> Option<Status> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Status {
        rss_kb: field("VmRSS:")?,
        threads: field("Threads:").unwrap_or(0),
    })
}

/// utime + stime from /proc/<pid>/stat; the command name may contain spaces and parentheses,
/// so fields are counted from the last `)`.
fn parse_stat_cpu(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parse_nofile_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tdeskgate\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Status {
                rss_kb: 10240,
                threads: 3
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn parses_stat_with_a_tricky_name() {
        let text = "42 (a) b (c)) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 1000 0 0";
        assert_eq!(parse_stat_cpu(text), Some(300));
    }

    #[test]
    fn parses_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            20000                40000                files\n";
        assert_eq!(parse_nofile_limit(text), Some(20000));
    }

    #[test]
    fn samples_itself() {
        let me = Proc::current();
        let a = me.sample().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = me.sample().unwrap();
        assert!(a.rss_bytes > 0 && b.threads >= 1);
        assert!(cpu_percent(&a, &b) >= 0.0);
        assert!(me.open_files_limit().unwrap().unwrap() > 0);
    }
}

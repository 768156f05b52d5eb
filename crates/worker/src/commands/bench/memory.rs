//! The process's memory, from `/proc/self/status` (Linux; `None` elsewhere).
//!
//! `VmHWM` is the peak resident set size since the process started, or since it was last
//! reset by writing `5` to `/proc/self/clear_refs` (Linux 4.0+), which the benchmark does at
//! the start of each run so that each run has a peak of its own. Everything in this process
//! counts: finflow's engine, the callback receiver, and the in-process sandbox with every
//! borrower and callback it holds. `--in-flight` reads its `finflow run` child instead
//! (`worker_process`), whose memory is the worker's alone.

/// Resident set sizes, in MiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rss {
    /// `VmRSS`: now.
    pub current_mb: f64,
    /// `VmHWM`: the peak.
    pub peak_mb: f64,
}

/// Resets the peak to the current size; whether it could.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The current and peak resident set size, when the system says.
pub fn rss() -> Option<Rss> {
    parse(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The same for another process (the `--in-flight` worker).
pub fn rss_of(pid: u32) -> Option<Rss> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse(status: &str) -> Option<Rss> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: f64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib / 1024.0)
        })
    };
    Some(Rss {
        current_mb: field("VmRSS")?,
        peak_mb: field("VmHWM")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vmrss_and_vmhwm() {
        let status =
            "Name:\tfinflow\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(
            parse(status),
            Some(Rss {
                current_mb: 40.0,
                peak_mb: 50.0
            })
        );
        assert_eq!(parse("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_size() {
        let rss = rss().expect("Linux has /proc/self/status");
        assert!(rss.current_mb > 0.0 && rss.peak_mb >= rss.current_mb);
        let by_pid = rss_of(std::process::id()).expect("and /proc/<pid>/status");
        assert!(by_pid.current_mb > 0.0 && by_pid.peak_mb >= by_pid.current_mb);
        assert_eq!(rss_of(u32::MAX), None, "no such process");
    }
}

//! What the benchmarks read off a process and a run: CPU time, resident memory, rates.

use std::time::Duration;

/// MiB per second for `bytes` moved in `d`.
pub fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / f64::from(1 << 20) / d.as_secs_f64()
}

/// The median (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A `kB` field of `/proc/PID/status` (0 when unreadable).
fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Resident memory now, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

/// Peak resident memory, KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

/// User plus system CPU time of a process so far, seconds (0 when unreadable).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

//! A process's resident memory and CPU time, read from `/proc/<pid>/status` and
//! `/proc/<pid>/stat` (Linux only).

use crate::error::BedError;

/// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`; 100 on every Linux
/// architecture the bench runs on).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Result<u64, BedError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(BedError::io(format!("read {path}")))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| BedError::Parse(format!("no VmRSS in {path}")))
}

/// User plus system CPU time in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, BedError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(BedError::io(format!("read {path}")))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / CLOCK_TICKS_PER_SECOND),
        _ => Err(BedError::Parse(format!("unexpected {path}: {text}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() -> Result<(), BedError> {
        let pid = std::process::id();
        assert!(rss_bytes(pid)? > 0);
        assert!(cpu_seconds(pid)? >= 0.0);
        Ok(())
    }
}

//! CPU time the mesh's processes spend on a phase, from `/proc/<pid>/stat`, per event the
//! phase stored. On this machine the rate a phase reaches swings by a tenth from one run to
//! the next with the machine's load, while the work each event costs moves much less: a
//! change that saves work shows here when the rate's noise hides it. And with every core
//! busy, the cores over the work per event is the rate the machine allows.

use std::time::Duration;

/// The processes a phase is measured over, each with the CPU time it had spent at the start.
pub struct CpuMeter {
    processes: Vec<(String, u32, Duration)>,
}

/// User and system time `pid` (all its threads) has spent, or `None` once it is gone.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's name, which may hold spaces and parentheses: the state is field 3,
    // so utime and stime (fields 14 and 15, in clock ticks) are the 12th and 13th here.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

impl CpuMeter {
    /// Starts measuring `processes` (a name and a pid each; this process is added as the
    /// bench, whose client shares the cores).
    pub fn start(processes: impl IntoIterator<Item = (String, u32)>) -> Self {
        let processes = processes
            .into_iter()
            .chain([("bench".to_owned(), std::process::id())])
            .filter_map(|(name, pid)| Some((name, pid, cpu_time(pid)?)))
            .collect();
        CpuMeter { processes }
    }

    /// The CPU time each process spent since the start, per one of `events`, as a line:
    /// the total first, then each process's share.
    pub fn per_event(&self, events: u64) -> String {
        let events = events.max(1) as f64;
        let mut total = 0.0;
        let mut shares = Vec::new();
        for (name, pid, before) in &self.processes {
            let Some(now) = cpu_time(*pid) else {
                shares.push(format!("{name} ?"));
                continue;
            };
            let micros = now.saturating_sub(*before).as_secs_f64() * 1e6 / events;
            total += micros;
            shares.push(format!("{name} {micros:.2}"));
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        format!(
            "{total:.2} µs of CPU an event ({}); all {cores} cores allow {:.0} events/s at that",
            shares.join(", "),
            cores as f64 * 1e6 / total.max(f64::MIN_POSITIVE)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_is_seen_spending_time() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("this process has a stat");
        // Busy until the kernel counts a tick more (10 ms of CPU), or five seconds.
        let started = std::time::Instant::now();
        let mut x = 0_u64;
        let mut after = before;
        while after == before && started.elapsed() < Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = cpu_time(pid).expect("this process has a stat");
        }
        assert!(after > before, "{before:?} then {after:?}");
        assert_eq!(cpu_time(u32::MAX), None);
    }
}

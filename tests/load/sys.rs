//! The operating-system calls the generator needs beyond std and tokio: raising its own
//! open-files limit, the clock-tick rate that /proc CPU times are counted in, and killing the
//! gateway for the crash test.

use std::io;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
pub struct NoFile {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every client socket is a file descriptor.
#[allow(unsafe_code)]
pub fn raise_nofile() -> io::Result<NoFile> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(NoFile {
        before,
        now: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// Clock ticks per second (USER_HZ), the unit of utime/stime in /proc/<pid>/stat.
#[allow(unsafe_code)]
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf takes no pointers and has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
    })
}

/// Sends SIGKILL to `pid`: the gateway dies at once, with no drain and no flush.
#[allow(unsafe_code)]
pub fn kill(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    // SAFETY: kill takes no pointers; a wrong pid is an error it reports, not undefined behaviour.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_to_the_hard_limit() {
        let nofile = raise_nofile().unwrap();
        assert_eq!(nofile.now, nofile.hard);
        assert!(nofile.before <= nofile.now);
    }

    #[test]
    fn kill_refuses_what_is_not_a_process() {
        assert_eq!(kill(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        // Far above any pid_max: the kernel's answer is "no such process".
        assert!(kill(i32::MAX as u32).is_err());
    }

    #[test]
    fn clock_ticks_are_sane() {
        assert!((10..=10_000).contains(&clock_ticks_per_sec()));
    }
}

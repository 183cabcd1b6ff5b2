//! Control groups: per-job limits and accounting, on cgroup v1, v2, or the hybrid of both.
//!
//! Each job gets its own group under the node's own group (read from `/proc/self/cgroup`),
//! so limits placed on the node still bound its jobs. Memory, CPU bandwidth and the number of
//! processes are limited there; CPU time, peak memory and OOM kills are read back from it,
//! because plain `rusage` misses descendants killed by the watchdog. Where a controller is
//! missing the job still runs, and [`Enforced`] says which limits were not enforced.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Which limits a run actually had enforced.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Enforced {
    pub memory: bool,
    /// CPU limited by a CFS bandwidth quota.
    pub cpu_quota: bool,
    /// CPU limited to dedicated cores (a cpuset).
    pub cpuset: bool,
    pub pids: bool,
    /// Whether CPU time and peak memory come from a cgroup (exact) or are missing.
    pub accounting: bool,
    /// Whether the whole tree can be killed through `cgroup.kill` (v2) in addition to the PID
    /// namespace.
    pub cgroup_kill: bool,
}

/// The cgroup hierarchies this host offers us.
#[derive(Clone, Debug, Default)]
pub struct Hierarchies {
    /// v1 controller name → the directory of our own group in that controller's hierarchy.
    v1: Vec<(String, PathBuf)>,
    /// Our own group in the v2 hierarchy, and the controllers its children can use.
    v2: Option<(PathBuf, Vec<String>)>,
}

impl Hierarchies {
    /// Reads `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn detect() -> Hierarchies {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut h = Hierarchies::default();
        for line in mountinfo.lines() {
            // … mount-point … - fstype source super-options
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mount_point = left.split(' ').nth(4).unwrap_or_default();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let options = r.nth(1).unwrap_or_default();
            match fstype {
                "cgroup" => {
                    for ctrl in ["memory", "cpu", "cpuacct", "pids", "cpuset"] {
                        if options.split(',').any(|o| o == ctrl) {
                            if let Some(rel) = own_path(&own, |c| c.split(',').any(|x| x == ctrl)) {
                                let dir = join_rel(Path::new(mount_point), &rel);
                                if dir.is_dir() && !h.v1.iter().any(|(c, _)| c == ctrl) {
                                    h.v1.push((ctrl.to_owned(), dir));
                                }
                            }
                        }
                    }
                }
                "cgroup2" => {
                    if let Some(rel) = own_path(&own, |c| c.is_empty()) {
                        let dir = join_rel(Path::new(mount_point), &rel);
                        let ctrls = fs::read_to_string(dir.join("cgroup.controllers"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect();
                        if dir.is_dir() {
                            h.v2 = Some((dir, ctrls));
                        }
                    }
                }
                _ => {}
            }
        }
        h
    }

    fn v1(&self, ctrl: &str) -> Option<&Path> {
        self.v1.iter().find(|(c, _)| c == ctrl).map(|(_, p)| p.as_path())
    }

    fn v2_has(&self, ctrl: &str) -> bool {
        self.v2.as_ref().is_some_and(|(_, c)| c.iter().any(|x| x == ctrl))
    }
}

/// The path of our own group in the hierarchy whose controller list matches.
fn own_path(own: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let ctrls = parts.next()?;
        let path = parts.next()?;
        matches(ctrls).then(|| path.to_owned())
    })
}

fn join_rel(mount: &Path, rel: &str) -> PathBuf {
    mount.join(rel.trim_start_matches('/'))
}

/// The limits to apply to one job's group.
#[derive(Clone, Copy, Debug)]
pub struct CgroupLimits<'a> {
    pub memory_bytes: u64,
    pub millicores: u32,
    pub pids: u32,
    /// Dedicated host CPUs. When given, they limit the job exactly and no bandwidth quota is
    /// set: a quota equal to a job's thread count can throttle its bursts (and rayon workers
    /// spin while throttled), which dedicated cores avoid.
    pub cpuset: Option<&'a [u32]>,
}

/// One job's group in every hierarchy that has a controller we use.
#[derive(Debug)]
pub struct JobCgroup {
    dirs: Vec<PathBuf>,
    memory_v1: Option<PathBuf>,
    cpuacct_v1: Option<PathBuf>,
    v2: Option<PathBuf>,
    pub enforced: Enforced,
}

/// Accounting read back after a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_ns: Option<u64>,
    pub peak_memory: Option<u64>,
    pub oom_killed: bool,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

impl JobCgroup {
    /// Creates the groups for job `name` and applies `limits` where a controller allows.
    pub fn create(h: &Hierarchies, name: &str, limits: CgroupLimits<'_>) -> JobCgroup {
        let mut cg = JobCgroup {
            dirs: Vec::new(),
            memory_v1: None,
            cpuacct_v1: None,
            v2: None,
            enforced: Enforced::default(),
        };
        let mk = |base: &Path| -> Option<PathBuf> {
            let dir = base.join(name);
            fs::create_dir(&dir).ok().map(|_| dir)
        };
        if let Some(dir) = h.v1("memory").and_then(mk) {
            let m = limits.memory_bytes.to_string();
            cg.enforced.memory = write(&dir.join("memory.limit_in_bytes"), &m).is_ok();
            // Swap counts too where the kernel accounts it, so a job cannot swap past its limit.
            let _ = write(&dir.join("memory.memsw.limit_in_bytes"), &m);
            let _ = write(&dir.join("memory.swappiness"), "0");
            cg.memory_v1 = Some(dir.clone());
            cg.dirs.push(dir);
        }
        let cpus =
            limits.cpuset.map(|c| c.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        if let (Some(cpus), Some(base)) = (&cpus, h.v1("cpuset")) {
            if let Some(dir) = mk(base) {
                // A new cpuset starts empty: it needs memory nodes before it can hold tasks.
                let mems = fs::read_to_string(base.join("cpuset.mems")).unwrap_or_default();
                cg.enforced.cpuset = write(&dir.join("cpuset.mems"), mems.trim()).is_ok()
                    && write(&dir.join("cpuset.cpus"), cpus).is_ok();
                cg.dirs.push(dir);
            }
        }
        if let Some(dir) = h.v1("cpu").and_then(mk) {
            if !cg.enforced.cpuset {
                let quota = u64::from(limits.millicores) * 100; // µs per 100 ms period
                cg.enforced.cpu_quota = write(&dir.join("cpu.cfs_period_us"), "100000").is_ok()
                    && write(&dir.join("cpu.cfs_quota_us"), &quota.to_string()).is_ok();
            }
            cg.dirs.push(dir);
        }
        if let Some(dir) = h.v1("cpuacct").and_then(mk) {
            cg.cpuacct_v1 = Some(dir.clone());
            cg.dirs.push(dir);
        }
        if let Some(dir) = h.v1("pids").and_then(mk) {
            cg.enforced.pids = write(&dir.join("pids.max"), &limits.pids.to_string()).is_ok();
            cg.dirs.push(dir);
        }
        if let Some((base, _)) = &h.v2 {
            // Controllers must be enabled for children in the parent first (pure v2 hosts).
            let wanted: Vec<&str> =
                ["memory", "cpu", "pids"].into_iter().filter(|c| h.v2_has(c)).collect();
            for c in &wanted {
                let _ = write(&base.join("cgroup.subtree_control"), &format!("+{c}"));
            }
            if let Some(dir) = mk(base) {
                if h.v2_has("memory") && !cg.enforced.memory {
                    cg.enforced.memory =
                        write(&dir.join("memory.max"), &limits.memory_bytes.to_string()).is_ok();
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
                if let (Some(cpus), true) = (&cpus, h.v2_has("cpuset") && !cg.enforced.cpuset) {
                    cg.enforced.cpuset = write(&dir.join("cpuset.cpus"), cpus).is_ok();
                }
                if h.v2_has("cpu") && !cg.enforced.cpu_quota && !cg.enforced.cpuset {
                    let quota = u64::from(limits.millicores) * 100;
                    cg.enforced.cpu_quota =
                        write(&dir.join("cpu.max"), &format!("{quota} 100000")).is_ok();
                }
                if h.v2_has("pids") && !cg.enforced.pids {
                    cg.enforced.pids =
                        write(&dir.join("pids.max"), &limits.pids.to_string()).is_ok();
                }
                cg.enforced.cgroup_kill = dir.join("cgroup.kill").exists();
                cg.v2 = Some(dir.clone());
                cg.dirs.push(dir);
            }
        }
        cg.enforced.accounting = cg.cpuacct_v1.is_some() && cg.memory_v1.is_some()
            || cg
                .v2
                .as_ref()
                .is_some_and(|d| d.join("memory.peak").exists() && d.join("cpu.stat").exists());
        cg
    }

    /// The `cgroup.procs` files a process writes its pid to, to join every group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Kills every process in the group at once (v2 only); the PID namespace covers v1.
    pub fn kill(&self) {
        if let Some(d) = &self.v2 {
            let _ = write(&d.join("cgroup.kill"), "1");
        }
    }

    /// CPU time, peak memory and whether the OOM killer fired, for the whole tree.
    pub fn usage(&self) -> Usage {
        let read = |p: PathBuf| fs::read_to_string(p).ok();
        let field = |text: &str, key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
        };
        let mut u = Usage::default();
        if let Some(d) = &self.cpuacct_v1 {
            u.cpu_ns = read(d.join("cpuacct.usage")).and_then(|s| s.trim().parse().ok());
        }
        if let Some(d) = &self.memory_v1 {
            u.peak_memory =
                read(d.join("memory.max_usage_in_bytes")).and_then(|s| s.trim().parse().ok());
            u.oom_killed = read(d.join("memory.oom_control"))
                .and_then(|s| field(&s, "oom_kill "))
                .is_some_and(|n| n > 0);
        }
        if let Some(d) = &self.v2 {
            if u.cpu_ns.is_none() {
                u.cpu_ns = read(d.join("cpu.stat"))
                    .and_then(|s| field(&s, "usage_usec "))
                    .map(|us| us * 1000);
            }
            if u.peak_memory.is_none() {
                u.peak_memory = read(d.join("memory.peak")).and_then(|s| s.trim().parse().ok());
            }
            if !u.oom_killed {
                u.oom_killed = read(d.join("memory.events"))
                    .and_then(|s| field(&s, "oom_kill "))
                    .is_some_and(|n| n > 0);
            }
        }
        u
    }
}

impl Drop for JobCgroup {
    /// Removes the groups. They are empty by now: the job's PID namespace is gone.
    fn drop(&mut self) {
        for d in &self.dirs {
            // A dying process can hold the group for a moment after it was reaped.
            for _ in 0..200 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_path_parses_proc_self_cgroup() {
        let own = "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu,cpuacct:/x\n0::/user.slice\n";
        assert_eq!(own_path(own, |c| c == "memory").as_deref(), Some("/process_api/abc"));
        assert_eq!(own_path(own, |c| c.is_empty()).as_deref(), Some("/user.slice"));
        assert_eq!(own_path(own, |c| c.split(',').any(|x| x == "cpu")).as_deref(), Some("/x"));
        assert_eq!(
            join_rel(Path::new("/sys/fs/cgroup/memory"), "/a/b"),
            PathBuf::from("/sys/fs/cgroup/memory/a/b")
        );
    }
}

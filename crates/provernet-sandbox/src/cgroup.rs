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
    /// Whether the program ran in its own user namespace, mapping only its uid.
    pub user_ns: bool,
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

    /// Only the v2 hierarchy, as on a cgroup-v2-only host. For operators who want v2 on a
    /// hybrid host, and for testing the v2 path on one.
    pub fn v2_only(mut self) -> Hierarchies {
        self.v1.clear();
        self
    }

    /// Whether any hierarchy is usable.
    pub fn is_empty(&self) -> bool {
        self.v1.is_empty() && self.v2.is_none()
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

/// The leaf group the node's own processes move to on a v2 host where its group must
/// delegate controllers to job groups.
pub const NODE_LEAF: &str = "provernet-node";

/// Enables `controllers` for the children of the v2 group `base`, returning those enabled.
///
/// cgroup v2 forbids a non-root group from both holding processes and handing domain
/// controllers (memory, cpu, pids) to its children. A node started by systemd with
/// `Delegate=yes`, or as a container's main process, sits in exactly such a group; there the
/// kernel answers `EBUSY`, and the right move (systemd's delegation rules say the same) is to
/// put the group's processes into a leaf child, [`NODE_LEAF`], and try again. Job groups are
/// then created beside that leaf.
fn delegate_v2(base: &Path, controllers: &[&str]) -> Vec<String> {
    let enabled = |base: &Path| -> Vec<String> {
        fs::read_to_string(base.join("cgroup.subtree_control"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let mut busy = false;
    for c in controllers {
        if enabled(base).iter().any(|e| e == c) {
            continue;
        }
        if let Err(e) = write(&base.join("cgroup.subtree_control"), &format!("+{c}")) {
            busy |= e.raw_os_error() == Some(libc::EBUSY);
        }
    }
    if busy {
        let leaf = base.join(NODE_LEAF);
        if fs::create_dir(&leaf).is_ok() || leaf.is_dir() {
            let procs = fs::read_to_string(base.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace() {
                // A process that exited meanwhile cannot be moved; that is fine.
                let _ = write(&leaf.join("cgroup.procs"), pid);
            }
            for c in controllers {
                let _ = write(&base.join("cgroup.subtree_control"), &format!("+{c}"));
            }
        }
    }
    let now = enabled(base);
    controllers.iter().filter(|c| now.iter().any(|e| e == *c)).map(|c| (*c).to_owned()).collect()
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
            // Only those still missing from v1 are asked for.
            let wanted: Vec<&str> = [
                ("memory", cg.memory_v1.is_none()),
                ("cpu", h.v1("cpu").is_none()),
                ("cpuset", cpus.is_some() && !cg.enforced.cpuset),
                ("pids", !cg.enforced.pids),
            ]
            .into_iter()
            .filter(|(c, missing)| *missing && h.v2_has(c))
            .map(|(c, _)| c)
            .collect();
            let delegated = delegate_v2(base, &wanted);
            let v2_has = |c: &str| delegated.iter().any(|d| d == c);
            if let Some(dir) = mk(base) {
                if v2_has("memory") && !cg.enforced.memory {
                    cg.enforced.memory =
                        write(&dir.join("memory.max"), &limits.memory_bytes.to_string()).is_ok();
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
                if let (Some(cpus), true) = (&cpus, v2_has("cpuset") && !cg.enforced.cpuset) {
                    cg.enforced.cpuset = write(&dir.join("cpuset.cpus"), cpus).is_ok();
                }
                if v2_has("cpu") && !cg.enforced.cpu_quota && !cg.enforced.cpuset {
                    let quota = u64::from(limits.millicores) * 100;
                    cg.enforced.cpu_quota =
                        write(&dir.join("cpu.max"), &format!("{quota} 100000")).is_ok();
                }
                if v2_has("pids") && !cg.enforced.pids {
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

    /// Waits, at most `limit`, until no process is left in any of the groups: a killed
    /// process stays in its group, still charged, until the kernel has torn it down. After
    /// this the accounting is final and the groups can be removed. Returns whether they
    /// emptied in time.
    pub fn wait_empty(&self, limit: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            let busy = self.dirs.iter().any(|d| {
                fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
            });
            if !busy {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
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
    /// Removes the groups. They are empty by now (see [`JobCgroup::wait_empty`]); a group
    /// the kernel still holds for a moment is retried for up to a second.
    fn drop(&mut self) {
        for d in &self.dirs {
            for _ in 0..500 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The no-internal-process rule, against the real kernel: a v2 group holding a process
    /// cannot hand a domain controller to its children until the process moves to a leaf.
    /// Uses whichever domain controller this host's v2 hierarchy offers (hugetlb on the
    /// project's hybrid machines; memory/cpu/pids on v2-only hosts).
    #[test]
    fn delegation_moves_the_group_processes_into_a_leaf() {
        let Some((root, ctrls)) = Hierarchies::detect().v2 else {
            eprintln!("SKIPPED: no cgroup v2 hierarchy");
            return;
        };
        let Some(ctrl) = ["memory", "pids", "cpu", "hugetlb", "io"]
            .into_iter()
            .find(|c| ctrls.iter().any(|x| x == c))
        else {
            eprintln!("SKIPPED: the v2 hierarchy offers no domain controller");
            return;
        };
        let group = root.join(format!("provernet-delegation-test-{}", std::process::id()));
        if fs::create_dir(&group).is_err() {
            eprintln!("SKIPPED: cannot create v2 groups here (not root?)");
            return;
        }
        let _ = write(&root.join("cgroup.subtree_control"), &format!("+{ctrl}"));
        let mut sleeper = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let pid = sleeper.id().to_string();
        write(&group.join("cgroup.procs"), &pid).unwrap();
        // The plain write is refused while the group holds a process.
        let direct = write(&group.join("cgroup.subtree_control"), &format!("+{ctrl}"));
        let refused = direct.as_ref().err().and_then(io::Error::raw_os_error);

        let enabled = delegate_v2(&group, &[ctrl]);

        let leaf_procs = fs::read_to_string(group.join(NODE_LEAF).join("cgroup.procs"));
        let group_procs = fs::read_to_string(group.join("cgroup.procs"));
        let job = group.join("job");
        let job_ctrls =
            fs::create_dir(&job).and_then(|()| fs::read_to_string(job.join("cgroup.controllers")));
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        let _ = fs::remove_dir(&job);
        let _ = fs::remove_dir(group.join(NODE_LEAF));
        let _ = fs::remove_dir(&group);

        assert_eq!(refused, Some(libc::EBUSY), "{direct:?}");
        assert_eq!(enabled, vec![ctrl.to_owned()]);
        assert_eq!(leaf_procs.unwrap().trim(), pid);
        assert_eq!(group_procs.unwrap().trim(), "");
        assert!(job_ctrls.unwrap().split_whitespace().any(|c| c == ctrl));
    }

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

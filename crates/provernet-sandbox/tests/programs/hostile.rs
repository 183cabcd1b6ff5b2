//! Hostile and well-behaved programs for the sandbox's tests. `provernet-hostile MODE [TAG]`:
//! each mode tries one thing a prover must not get away with, reports on stderr, and exits 0
//! when the sandbox stopped it (or 3 when it was not stopped). `TAG` marks processes so tests
//! can check that none survive.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

fn blocked(what: &str, r: std::io::Result<impl std::fmt::Debug>) -> bool {
    match r {
        Ok(v) => {
            eprintln!("NOT BLOCKED: {what}: {v:?}");
            false
        }
        Err(e) => {
            eprintln!("blocked: {what}: {e}");
            true
        }
    }
}

fn verdict(all_blocked: bool) -> ! {
    std::process::exit(if all_blocked { 0 } else { 3 })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("ok");
    match mode {
        // Copies each input to an output file and reports its environment.
        "ok" => {
            for e in std::fs::read_dir("/job/in").unwrap() {
                let e = e.unwrap();
                let bytes = std::fs::read(e.path()).unwrap();
                std::fs::write(format!("/job/out/{}.out", e.file_name().to_string_lossy()), bytes)
                    .unwrap();
            }
            for k in [
                "PROVERNET_JOB_ID",
                "PROVERNET_CORES",
                "PROVERNET_MEMORY_BYTES",
                "RAYON_NUM_THREADS",
            ] {
                eprintln!("{k}={}", std::env::var(k).unwrap_or_default());
            }
            eprintln!("uid={}", nix_uid());
            let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
            eprintln!("uid_map={}", map.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        "spin" => loop {
            std::hint::spin_loop();
        },
        "sleep" => std::thread::sleep(Duration::from_secs(3600)),
        "fork-bomb" => {
            let me = std::env::current_exe().unwrap();
            let mut n = 0u64;
            let mut children = Vec::new();
            loop {
                match std::process::Command::new(&me)
                    .arg("sleep")
                    .arg(args.get(2).cloned().unwrap_or_default())
                    .spawn()
                {
                    Ok(c) => {
                        n += 1;
                        children.push(c);
                    }
                    Err(e) => {
                        eprintln!("fork bomb stopped after {n} processes: {e}");
                        // Keep trying, as a real bomb would, until the watchdog ends it.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        "memory-hog" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            for i in 0.. {
                held.push(vec![1u8; 64 << 20]);
                eprintln!("holding {} MiB", (i + 1) * 64);
            }
        }
        "network" => {
            let mut ok = blocked(
                "connect 192.0.2.1:80 (TEST-NET-1, documentation range)",
                TcpStream::connect_timeout(
                    &"192.0.2.1:80".parse().unwrap(),
                    Duration::from_secs(2),
                ),
            );
            ok &= blocked(
                "connect 127.0.0.1:22",
                TcpStream::connect_timeout(
                    &"127.0.0.1:22".parse().unwrap(),
                    Duration::from_secs(2),
                ),
            );
            ok &= blocked(
                "resolve example.com",
                "example.com:80".to_socket_addrs().map(|a| a.count()),
            );
            ok &= blocked("bind 0.0.0.0:8080", std::net::TcpListener::bind("0.0.0.0:8080"));
            verdict(ok)
        }
        "write-outside" => {
            let mut ok = true;
            for p in [
                "/etc/x",
                "/job/in/x",
                "/usr/x",
                "/x",
                "/job/x",
                "/.out/x",
                "/proc/sys/kernel/hostname",
            ] {
                ok &= blocked(&format!("write {p}"), std::fs::write(p, b"pwned"));
            }
            ok &= blocked(
                "chmod /job/prover",
                std::fs::set_permissions(
                    "/job/prover",
                    std::os::unix::fs::PermissionsExt::from_mode(0o777),
                ),
            );
            verdict(ok)
        }
        "read-host" => {
            let mut ok = true;
            for p in ["/etc/shadow", "/root", "/home", "/.out", "/proc/1/environ"] {
                ok &= blocked(
                    &format!("read {p}"),
                    std::fs::read(p)
                        .or_else(|_| std::fs::read_dir(p).map(|_| Vec::new()))
                        .and_then(|v| {
                            if v.is_empty() && std::path::Path::new(p).is_dir() {
                                Err(std::io::Error::other("empty"))
                            } else {
                                Ok(v)
                            }
                        }),
                );
            }
            // Other jobs: the scratch area of the host is not in this filesystem.
            let visible: Vec<String> = std::fs::read_dir("/job")
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            eprintln!("/job holds {visible:?}");
            ok &= visible.iter().all(|n| ["prover", "in", "out", "proof"].contains(&n.as_str()));
            let procs = std::fs::read_dir("/proc")
                .unwrap()
                .filter(|e| {
                    e.as_ref().unwrap().file_name().to_string_lossy().parse::<u32>().is_ok()
                })
                .count();
            eprintln!("{procs} processes visible");
            ok &= procs <= 3;
            // hidepid=2: the init (root) is invisible, not merely unreadable.
            ok &= blocked("see /proc/1", std::fs::metadata("/proc/1"));
            verdict(ok)
        }
        "escape" => {
            let mut ok = true;
            ok &= blocked("unshare", nix_unshare());
            ok &= blocked("mount", nix_mount());
            verdict(ok)
        }
        // Nested namespaces by `clone` with namespace flags: a user namespace would give the
        // child every capability over a fresh network namespace (raw and netfilter sockets).
        "clone-ns" => {
            let mut ok = true;
            for (what, flags) in [
                ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
                ("CLONE_NEWUSER|CLONE_NEWNET", libc::CLONE_NEWUSER | libc::CLONE_NEWNET),
                ("CLONE_NEWNS", libc::CLONE_NEWNS),
                ("CLONE_NEWPID|CLONE_NEWUSER", libc::CLONE_NEWPID | libc::CLONE_NEWUSER),
            ] {
                ok &= blocked(&format!("clone({what})"), raw_clone(flags));
            }
            ok &= blocked(
                "unshare(CLONE_NEWUSER)",
                check(unsafe_syscall1(libc::SYS_unshare, libc::CLONE_NEWUSER as i64)),
            );
            verdict(ok)
        }
        // `clone3` keeps its flags in memory a filter cannot read: it must answer ENOSYS, with
        // or without namespace flags, so that runtimes fall back to `clone`.
        "clone3" => {
            let mut ok = true;
            for flags in [0u64, (libc::CLONE_NEWUSER | libc::CLONE_NEWNET) as u64] {
                let r = raw_clone3(flags);
                let enosys = matches!(&r, Err(e) if e.raw_os_error() == Some(libc::ENOSYS));
                ok &= blocked(&format!("clone3(flags {flags:#x})"), r) && enosys;
            }
            verdict(ok)
        }
        "sockets" => {
            let mut ok = true;
            for (what, domain, ty, proto) in [
                ("AF_VSOCK", libc::AF_VSOCK, libc::SOCK_STREAM, 0),
                ("AF_NETLINK route", libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
                ("AF_NETLINK netfilter", libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER),
                ("AF_PACKET", libc::AF_PACKET, libc::SOCK_RAW, 0),
                ("AF_INET", libc::AF_INET, libc::SOCK_STREAM, 0),
                ("AF_INET6 udp", libc::AF_INET6, libc::SOCK_DGRAM, 0),
                ("AF_ALG", libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
            ] {
                ok &= blocked(&format!("socket({what})"), raw_socket(domain, ty, proto));
            }
            verdict(ok)
        }
        // A syscall number with the x32 bit: the filter must answer it (EPERM), not the
        // kernel's x32 table.
        "x32" => {
            let mut ok = true;
            for (what, nr) in [("getpid", libc::SYS_getpid), ("unshare", libc::SYS_unshare)] {
                let r = check(unsafe_syscall1(X32_BIT | nr, 0));
                let eperm = matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EPERM));
                ok &= blocked(&format!("x32 {what}"), r) && eperm;
            }
            verdict(ok)
        }
        // What a runtime needs still works: threads, child processes, local sockets.
        "runtime" => {
            let t = std::thread::spawn(|| 21 * 2).join().unwrap();
            let status = std::process::Command::new("/bin/true").status().unwrap();
            let pair = raw_socketpair().unwrap();
            eprintln!("thread {t}, child {status}, unix socketpair {pair:?}");
            verdict(t == 42 && status.success())
        }
        "flood" => {
            let mut f = std::fs::File::create("/job/out/flood").unwrap();
            let chunk = vec![7u8; 1 << 20];
            let mut written = 0u64;
            loop {
                if let Err(e) = f.write_all(&chunk) {
                    eprintln!("flood stopped after {} MiB: {e}", written >> 20);
                    std::process::exit(1);
                }
                written += chunk.len() as u64;
            }
        }
        "stderr-flood" => {
            let line = "x".repeat(1000);
            for _ in 0..20_000 {
                eprintln!("{line}");
            }
            eprintln!("the real reason is at the end");
            std::process::exit(2);
        }
        "daemon" => {
            let me = std::env::current_exe().unwrap();
            let tag = args.get(2).cloned().unwrap_or_default();
            let mut cmd = std::process::Command::new(me);
            cmd.arg("sleep").arg(tag);
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            let child = cmd.spawn().unwrap();
            eprintln!("left daemon {} behind", child.id());
            std::mem::forget(child);
        }
        "exit" => std::process::exit(args.get(2).and_then(|c| c.parse().ok()).unwrap_or(1)),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(64);
        }
    }
}

fn nix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn nix_unshare() -> std::io::Result<()> {
    std::process::Command::new("/usr/bin/unshare").arg("-n").arg("true").status().and_then(|s| {
        if s.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("unshare exited {s}")))
        }
    })
}

fn nix_mount() -> std::io::Result<()> {
    std::process::Command::new("/usr/bin/mount")
        .args(["-t", "tmpfs", "tmpfs", "/tmp"])
        .status()
        .and_then(|s| {
            if s.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!("mount exited {s}")))
            }
        })
}

const X32_BIT: i64 = 0x4000_0000;

fn check(r: i64) -> std::io::Result<i64> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[allow(unsafe_code)]
fn unsafe_syscall1(nr: i64, a: i64) -> i64 {
    // SAFETY: raw syscalls with scalar arguments only; the point is to see them refused.
    unsafe { libc::syscall(nr, a) }
}

/// `clone(flags | SIGCHLD)` without a new stack: the child (if any) exits at once.
#[allow(unsafe_code)]
fn raw_clone(flags: i32) -> std::io::Result<i64> {
    // SAFETY: fork-like clone (no CLONE_VM): the child gets a copy of the address space and
    // calls only `_exit`.
    let pid = unsafe { libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as i64, 0, 0, 0, 0) };
    after_clone(pid)
}

#[allow(unsafe_code)]
fn raw_clone3(flags: u64) -> std::io::Result<i64> {
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
    // tls, set_tid, set_tid_size, cgroup.
    let mut args = [0u64; 11];
    args[0] = flags;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: a valid clone_args of the size given; a child (if any) calls only `_exit`.
    let pid =
        unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), std::mem::size_of_val(&args)) };
    after_clone(pid)
}

#[allow(unsafe_code)]
fn raw_socket(domain: i32, ty: i32, proto: i32) -> std::io::Result<i32> {
    // SAFETY: plain socket(2); the descriptor is closed at once.
    let fd = unsafe { libc::socket(domain, ty, proto) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: closing the descriptor we just opened.
    unsafe { libc::close(fd) };
    Ok(fd)
}

#[allow(unsafe_code)]
fn raw_socketpair() -> std::io::Result<[i32; 2]> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair(2) into a two-element array.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fds)
}

/// In a clone's child: exit at once. In the parent: reap the child, if there is one.
#[allow(unsafe_code)]
fn after_clone(pid: i64) -> std::io::Result<i64> {
    if pid == 0 {
        // SAFETY: leaving the child at once.
        unsafe { libc::_exit(0) }
    }
    let r = check(pid);
    if let Ok(p) = r {
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(p as i32, std::ptr::null_mut(), 0) };
    }
    r
}

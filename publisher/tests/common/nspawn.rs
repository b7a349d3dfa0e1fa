//! A throw-away systemd as PID 1: `systemd-nspawn -b` on a Debian rootfs that `mmdebstrap`
//! builds once (from the machine's own apt sources) and caches in the target directory. The
//! container has its own network namespace (its loopback never meets the host's) and a
//! volatile overlay (the cached rootfs stays clean). The host needs no systemd of its own:
//! commands run inside through `nsenter` on the container's PID 1 (`machinectl`,
//! `systemctl -M` need a host systemd and bus).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Packages of the rootfs: systemd as init, logind for lingering users, `DynamicUser=` names,
/// curl for HTTP from inside.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,\
                        libnss-systemd,curl,ca-certificates,procps";
/// Written into a finished rootfs; a different value (other packages) builds it again.
const STAMP: &str = "server-analytics systemd rootfs v1: ";
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(cmd))
        .find(|p| p.is_file())
}

/// The target directory this test binary was built in (`target/debug/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

fn rootfs_dir() -> PathBuf {
    target_dir().join("systemd-rootfs")
}

fn rootfs_ready(dir: &Path) -> bool {
    fs::read_to_string(dir.join(".server-analytics-rootfs")).is_ok_and(|s| s == stamp())
}

fn stamp() -> String {
    format!("{STAMP}{PACKAGES}\n")
}

/// Whether this process runs as root (`/proc/self` belongs to the effective uid).
pub fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Why a container cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("needs root (systemd-nspawn boots a container); CI runs as root".into());
    }
    if which("systemd-nspawn").is_none() {
        return Some(
            "needs systemd-nspawn (Debian package systemd-container; scripts/test.sh installs it)"
                .into(),
        );
    }
    if which("mmdebstrap").is_none() && !rootfs_ready(&rootfs_dir()) {
        return Some("needs mmdebstrap to build the rootfs (scripts/test.sh installs it)".into());
    }
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        return Some(
            "needs a cgroup v2 hierarchy (/sys/fs/cgroup/unified or /sys/fs/cgroup)".into(),
        );
    }
    None
}

/// The host's apt sources (the rootfs comes from the same mirror) and Debian release.
fn apt_sources() -> (PathBuf, String) {
    let sources = [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("no /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list");
    let release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "bookworm".into());
    (sources, codename)
}

/// The cached rootfs, built (about 30 s to a minute, ~220 MB) under a lock the first time.
pub fn rootfs() -> PathBuf {
    let dir = rootfs_dir();
    let lock = fs::File::create(target_dir().join("systemd-rootfs.lock")).unwrap();
    lock.lock().unwrap();
    if rootfs_ready(&dir) {
        return dir;
    }
    let partial = target_dir().join("systemd-rootfs.partial");
    for old in [&dir, &partial] {
        if old.exists() {
            fs::remove_dir_all(old).unwrap();
        }
    }
    let (sources, codename) = apt_sources();
    eprintln!("building {} with mmdebstrap ({codename})", dir.display());
    let out = Command::new("mmdebstrap")
        .args(["--variant=minbase", &format!("--include={PACKAGES}")])
        .arg(&codename)
        .arg(&partial)
        .arg(&sources)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mmdebstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // mmdebstrap copies the host's name; the container gets its own.
    fs::write(partial.join("etc/hostname"), "sa-test\n").unwrap();
    fs::write(partial.join(".server-analytics-rootfs"), stamp()).unwrap();
    fs::rename(&partial, &dir).unwrap();
    dir
}

/// A booted container; dropping it powers it off and removes its cgroups. When the test is
/// panicking, the journal of `units` is printed first.
pub struct Container {
    pub name: String,
    nspawn: Child,
    leader: u32,
    cgroups: Vec<PathBuf>,
    log: PathBuf,
    /// `journalctl` arguments printed on failure, e.g. `["-u", "pi-subscriber"]`.
    pub journals: Vec<Vec<String>>,
}

/// The cgroup directories nspawn must start in: its own in every v2-relevant hierarchy, so
/// that its `payload/` and `supervisor/` groups never land at the root (a v1/v2 hybrid needs
/// both `systemd` and `unified`). The first one holds `payload/init.scope`.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        vec![
            Path::new("/sys/fs/cgroup/unified").join(name),
            Path::new("/sys/fs/cgroup/systemd").join(name),
        ]
    } else {
        vec![Path::new("/sys/fs/cgroup").join(name)]
    }
}

impl Container {
    /// Boots `rootfs` with `binds` (host path, container path) mounted read-only and waits
    /// until systemd says the system is up.
    pub fn boot(rootfs: &Path, binds: &[(&Path, &str)], log: PathBuf) -> Container {
        let name = format!("sa-test-{}", std::process::id());
        let cgroups = cgroup_dirs(&name);
        for dir in &cgroups {
            fs::create_dir_all(dir).unwrap();
        }
        let mut cmd = Command::new("sh");
        // The shell moves itself into the cgroups, then becomes systemd-nspawn.
        cmd.arg("-c")
            .arg(
                r#"for g in $CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 125; done; exec "$@""#,
            )
            .arg("sh")
            .arg("systemd-nspawn")
            .args(["-q", "-D"])
            .arg(rootfs)
            .args(["-M", &name])
            .args(["--register=no", "--keep-unit", "--volatile=overlay"])
            .args(["--private-network", "--console=passive"]);
        for (host, inside) in binds {
            cmd.arg(format!("--bind-ro={}:{inside}", host.display()));
        }
        cmd.arg("-b");
        let joined: Vec<String> = cgroups.iter().map(|d| d.display().to_string()).collect();
        let out = fs::File::create(&log).unwrap();
        let nspawn = cmd
            .env("CGROUPS", joined.join(" "))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut container = Container {
            name,
            nspawn,
            leader: 0,
            cgroups,
            log,
            journals: Vec::new(),
        };
        let procs = container.cgroups[0].join("payload/init.scope/cgroup.procs");
        let deadline = Instant::now() + Duration::from_secs(60);
        container.leader = loop {
            let first = fs::read_to_string(&procs).unwrap_or_default();
            if let Some(Ok(pid)) = first.lines().next().map(str::parse) {
                break pid;
            }
            if let Some(status) = container.nspawn.try_wait().unwrap() {
                panic!("systemd-nspawn exited ({status}): {}", container.console());
            }
            assert!(
                Instant::now() < deadline,
                "no init: {}",
                container.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // PID 1 is in init.scope before it listens: wait for its socket, then for boot.
        let boot = "until test -S /run/systemd/private; do sleep 0.05; done; \
                    systemctl is-system-running --wait";
        let state = container.sh(boot);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_owned();
        if state != "running" {
            // "degraded": a unit of the minimal rootfs failed; say which, carry on.
            let failed = container.ok("systemctl --failed --no-legend --plain");
            eprintln!("container state {state:?}; failed units: {failed}");
        }
        container
    }

    /// The console output of systemd-nspawn so far.
    pub fn console(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn enter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.leader.to_string(), "-a", "env", "-i", PATH])
            .args(["HOME=/root", "LANG=C.UTF-8", "timeout", "120"]);
        cmd
    }

    /// Runs `script` with `sh -c` as root inside.
    pub fn sh(&self, script: &str) -> Output {
        self.enter().args(["sh", "-c", script]).output().unwrap()
    }

    /// Runs `script` as `user` (uid `uid`) with the environment of a login: `HOME`, `USER`,
    /// and the `XDG_RUNTIME_DIR` that `systemctl --user` needs.
    pub fn sh_as(&self, user: &str, uid: u32, script: &str) -> Output {
        self.enter()
            .args(["runuser", "-u", user, "--", "env"])
            .arg(format!("HOME=/home/{user}"))
            .arg(format!("USER={user}"))
            .arg(format!("LOGNAME={user}"))
            .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"))
            .args(["sh", "-c", script])
            .output()
            .unwrap()
    }

    /// `sh` that must succeed; its stdout, trimmed.
    pub fn ok(&self, script: &str) -> String {
        checked(script, self.sh(script))
    }

    /// `sh_as` that must succeed; its stdout, trimmed.
    pub fn ok_as(&self, user: &str, uid: u32, script: &str) -> String {
        checked(script, self.sh_as(user, uid, script))
    }

    fn power_off(&mut self) {
        let pid = self.nspawn.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.nspawn.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.nspawn.kill();
                let _ = fs::write(self.cgroups[0].join("cgroup.kill"), "1");
                let _ = self.nspawn.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn checked(script: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "`{script}` failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() && self.leader != 0 {
            for args in &self.journals {
                let out = self
                    .enter()
                    .args(["journalctl", "--no-pager", "-n", "200"])
                    .args(args)
                    .output();
                if let Ok(out) = out {
                    eprintln!(
                        "== journalctl {}\n{}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
        }
        self.power_off();
        // Depth first: the container leaves payload/…, supervisor/ behind.
        for root in &self.cgroups {
            let mut dirs: Vec<PathBuf> = Vec::new();
            let mut todo = vec![root.clone()];
            while let Some(dir) = todo.pop() {
                if let Ok(entries) = fs::read_dir(&dir) {
                    todo.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                dirs.push(dir);
            }
            // A cgroup whose last process is still exiting cannot be removed yet.
            let deadline = Instant::now() + Duration::from_secs(5);
            while root.exists() && Instant::now() < deadline {
                for dir in dirs.iter().rev() {
                    let _ = fs::remove_dir(dir);
                }
                if root.exists() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let _ = fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(&self.name));
    }
}

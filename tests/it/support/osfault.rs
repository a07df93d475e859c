//! Faults from the operating system for the real binary: file systems mounted for one test
//! (a small tmpfs, a loop-mounted ext4 image) and libfiu's POSIX wrappers preloaded into the
//! daemon (`fiu-run -x`), switched at run time with `fiu-ctrl`.
//!
//! Mounting needs root and injecting needs fiu-utils; [`skip_reason`] says what is missing
//! so a test can print why it does not run. Every mount is undone by its guard's `Drop`, also
//! when the test fails; the daemon's guard kills it first (a mounted file system with the
//! daemon's files open cannot be unmounted).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// What the tests need from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Root, to mount.
    Root,
    /// fiu-utils (`fiu-run`, `fiu-ctrl`, libfiu's POSIX preload library).
    Fiu,
}

const FIU_POSIX_PRELOAD: &str = "/usr/lib/fiu/fiu_posix_preload.so";

/// Why a test needing `needs` cannot run here, or `None` when it can.
pub fn skip_reason(needs: Needs) -> Option<String> {
    if needs == Needs::Root {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
        if euid != Some("0") {
            return Some("not root: cannot mount a file system for the state directory".into());
        }
    }
    if needs == Needs::Fiu {
        let found = |tool: &str| Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        let tools = ["fiu-run", "fiu-ctrl"].iter().all(|t| found(t).is_ok_and(|o| o.status.success()));
        if !tools || !Path::new(FIU_POSIX_PRELOAD).exists() {
            return Some("fiu-utils is not installed (apt-get install fiu-utils)".into());
        }
    }
    None
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A file system mounted on a directory for the length of a test; unmounted on drop.
#[derive(Debug)]
pub struct Mount {
    pub dir: PathBuf,
    /// The loop device of an ext4 image (for its sysfs knobs).
    pub device: Option<String>,
}

impl Mount {
    /// A tmpfs of `size` (as `mount -o size=` takes it) on `dir`, created if needed.
    pub fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"]).arg(dir))?;
        Ok(Mount { dir: dir.to_owned(), device: None })
    }

    /// A fresh ext4 image of `mib` MiB at `image`, loop-mounted on `dir` (see
    /// [`Mount::ext4_image`]).
    pub fn ext4(image: &Path, dir: &Path, mib: u64) -> Result<Mount, String> {
        let file = std::fs::File::create(image).map_err(|e| e.to_string())?;
        file.set_len(mib << 20).map_err(|e| e.to_string())?;
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image))?;
        Mount::ext4_image(image, dir)
    }

    /// The ext4 image at `image` loop-mounted on `dir` with `errors=remount-ro` (what a data
    /// partition of the box would use).
    pub fn ext4_image(image: &Path, dir: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        run(Command::new("mount").args(["-o", "loop,errors=remount-ro"]).arg(image).arg(dir))?;
        let mut mount = Mount { dir: dir.to_owned(), device: None };
        let out = Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(dir).output().map_err(|e| e.to_string())?;
        let device = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !device.starts_with("/dev/") {
            return Err(format!("cannot tell the loop device of {}: {device:?}", dir.display()));
        }
        mount.device = Some(device);
        Ok(mount)
    }

    /// `mount -o remount,<options>`.
    pub fn remount(&self, options: &str) -> Result<(), String> {
        run(Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.dir))
    }

    /// Makes the kernel record an ext4 error, which with `errors=remount-ro` turns the file
    /// system read-only under every open file (what a failing disk does).
    pub fn trigger_ext4_error(&self) -> Result<(), String> {
        let device = self.device.as_deref().ok_or("not an ext4 image")?;
        let name = Path::new(device).file_name().and_then(|n| n.to_str()).ok_or("device name")?;
        std::fs::write(format!("/sys/fs/ext4/{name}/trigger_fs_error"), "zenedge test: simulated disk error\n")
            .map_err(|e| format!("/sys/fs/ext4/{name}/trigger_fs_error: {e}"))
    }

    /// Unmounts now (the guard then has nothing left to do).
    pub fn unmount(&mut self) -> Result<(), String> {
        run(Command::new("umount").arg(&self.dir))?;
        self.device = None;
        self.dir = PathBuf::new();
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.dir.as_os_str().is_empty() {
            return;
        }
        if run(Command::new("umount").arg(&self.dir)).is_err() {
            // Still busy (a process of the failed test): detach it so nothing stays mounted.
            let _ = run(Command::new("umount").arg("-l").arg(&self.dir));
        }
    }
}

/// Fills the file system under `dir` with a file `name` until its free space is at most
/// `leave` bytes (or the file system is full). Returns the filler's path.
pub fn fill(dir: &Path, name: &str, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("create the filler");
    let chunk = vec![0x5a_u8; 64 << 10];
    loop {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let n = chunk.len().min((free - leave) as usize);
        match file.write(&chunk[..n]) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    file.sync_all().expect("fsync the filler");
    path
}

/// Free bytes for unprivileged files on the file system of `dir` (`f_bavail`).
pub fn free_bytes(dir: &Path) -> u64 {
    let st = rustix::fs::statvfs(dir).expect("statvfs");
    st.f_bavail * st.f_frsize
}

/// The real binary, optionally with libfiu's POSIX wrappers preloaded, its stderr kept.
pub struct Zenedge {
    child: Child,
    pub mllp: SocketAddr,
    pub dicom: SocketAddr,
    pub http: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    fiu_fifo: Option<PathBuf>,
}

/// How a start ended: ready, or the process ended first (with its stderr).
pub type Started = Result<Zenedge, String>;

impl Zenedge {
    /// Starts `zenedge serve --config config` and waits for its ready line. With `fiu_fifo`
    /// (a path prefix in the test's temp dir) it runs under `fiu-run -x`, remote-controllable
    /// at `<fiu_fifo>-<pid>.in`.
    pub fn start(config: &Path, fiu_fifo: Option<&Path>) -> Started {
        let command = match fiu_fifo {
            Some(fifo) => {
                let mut c = Command::new("fiu-run");
                c.arg("-x").arg("-f").arg(fifo).arg(env!("CARGO_BIN_EXE_zenedge"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_zenedge")),
        };
        let mut child = super::process::serve(command, config);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("zenedge is ready") {
                    let _ = ready_tx.send(line.clone());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let Ok(ready) = ready_rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let status = child.wait().expect("reap zenedge");
            return Err(format!("{status}\n{}", lines.lock().unwrap().join("\n")));
        };
        let field = |name: &str| -> SocketAddr {
            let start = ready.find(&format!("{name}=")).expect("address in the ready line") + name.len() + 1;
            ready[start..].split_whitespace().next().unwrap().parse().unwrap()
        };
        Ok(Zenedge {
            mllp: field("mllp"),
            dicom: field("dicom"),
            http: field("http"),
            child,
            lines,
            fiu_fifo: fiu_fifo.map(Path::to_owned),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a libfiu remote-control command (`enable name=…`, `disable name=…`) with
    /// `fiu-ctrl`, and checks that libfiu took it.
    pub fn fiu(&self, command: &str) {
        let fifo = self.fiu_fifo.as_ref().expect("started under fiu-run");
        let out = Command::new("fiu-ctrl")
            .arg("-f")
            .arg(fifo)
            .arg("-c")
            .arg(command)
            .arg(self.pid().to_string())
            .output()
            .expect("run fiu-ctrl");
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !said.contains("rror"), "fiu-ctrl {command:?}: {said}");
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// `true` while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits (up to a minute, then kills it and fails) for the process to exit by itself.
    pub fn exited(&mut self) -> ExitStatus {
        let pid = self.pid();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                return true;
            }
            false
        });
        let status = self.child.wait().expect("wait for zenedge");
        let _ = done_tx.send(());
        assert!(!watchdog.join().unwrap(), "zenedge did not exit by itself within a minute:\n{}", self.stderr());
        status
    }

    /// SIGTERM and a clean exit (status 0).
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let status = self.exited();
        assert!(status.success(), "zenedge stopped with {status}:\n{}", self.stderr());
    }
}

impl Drop for Zenedge {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

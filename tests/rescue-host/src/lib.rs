//! The rescue host for tests (installer tests of the core, bootstrap tests of the service, the
//! end-to-end tests): a real OpenSSH server on 127.0.0.1 with recording stubs, a loop
//! device as the disk, a Talos-like disk image and a loopback HTTP server that serves it.
//!
//! Safety: sshd and the HTTP server bind loopback addresses only; `reboot` is a stub that writes a
//! marker file; every loop device is attached over a file in a temp dir, and [`LoopDisk::path`]
//! refuses to hand out a device that is not backed by its own file. Everything is undone on drop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use talos_manager_core::Secret;
use talos_manager_core::installer::{HostKeys, SshTarget};

/// The installer's test data (`dmidecode -t system` output, lsblk JSON, grub.cfg), kept once in
/// the core's test data.
pub const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../talos-manager-core/tests/data/installer"
);

/// Fails (never skips) when a tool is missing, saying how to install it.
pub fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
        ])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is missing: the installer tests need it. Install it with \
         `apt-get install {package}` (scripts/test does this on a fresh machine)"
    );
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn sh(command: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", command])
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// An SSH key pair made by ssh-keygen.
pub struct KeyPair {
    pub private: Secret<String>,
    pub public: String,
}

impl KeyPair {
    /// `kind` is passed to `ssh-keygen` (for example `-t ed25519` or `-t rsa -b 2048 -m PEM`).
    pub fn generate(dir: &Path, name: &str, kind: &str) -> KeyPair {
        require("ssh-keygen", "openssh-client");
        let path = dir.join(name);
        sh(&format!(
            "ssh-keygen -q {kind} -N '' -C test -f {}",
            path.display()
        ));
        KeyPair {
            private: Secret::new(std::fs::read_to_string(&path).unwrap()),
            public: std::fs::read_to_string(path.with_extension("pub")).unwrap(),
        }
    }
}

/// What the stub commands answer, changed by tests through files in the state folder.
pub struct Stubs {
    pub dir: PathBuf,
    pub state: PathBuf,
}

impl Stubs {
    fn create(root: &Path) -> Stubs {
        let dir = root.join("stubs");
        let state = root.join("state");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let s = state.display();
        let stub = |name: &str, body: String| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            sh(&format!("chmod 0755 {}", path.display()));
        };
        stub("hostname", format!("cat {s}/hostname"));
        stub(
            "dmidecode",
            format!(
                "echo \"dmidecode $*\" >> {s}/calls\n\
                 case \"$*\" in\n\
                 '-s system-uuid') cat {s}/uuid ;;\n\
                 '-t system') cat {DATA}/dmidecode-system.txt ;;\n\
                 *) echo \"unexpected: $*\" >&2; exit 2 ;;\n\
                 esac"
            ),
        );
        stub(
            "lsblk",
            format!("echo \"lsblk $*\" >> {s}/calls\ncat {s}/lsblk.json"),
        );
        stub(
            "reboot",
            format!("echo reboot >> {s}/calls\ntouch {s}/rebooted"),
        );
        let stubs = Stubs { dir, state };
        stubs.set_hostname("rescue");
        stubs.set_uuid("4c4c4544-0042-3510-8057-b4c04f4e3432");
        stubs.set_lsblk(&std::fs::read_to_string(Path::new(DATA).join("lsblk.json")).unwrap());
        stubs
    }

    /// What the `lsblk` stub prints (by default the Hetzner fixture with an md RAID).
    pub fn set_lsblk(&self, json: &str) {
        std::fs::write(self.state.join("lsblk.json"), json).unwrap();
    }

    pub fn set_hostname(&self, hostname: &str) {
        std::fs::write(self.state.join("hostname"), format!("{hostname}\n")).unwrap();
    }

    pub fn set_uuid(&self, uuid: &str) {
        std::fs::write(self.state.join("uuid"), format!("{uuid}\n")).unwrap();
    }

    pub fn rebooted(&self) -> bool {
        self.state.join("rebooted").exists()
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's sshd on 127.0.0.1, with its own host key, our authorized keys and the stubs first
/// in `PATH`. Killed on drop.
pub struct Sshd {
    pub port: u16,
    pub host_key_fingerprint: String,
    /// The same host key's MD5 fingerprint, colon-separated hex (`ssh-keygen -E md5`, without
    /// its `MD5:` prefix): the form Hetzner shows keys in.
    pub host_key_md5: String,
    pub stubs: Stubs,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sshd {
    /// OpenSSH's `MAX_LISTEN_SOCKS`.
    pub const MAX_ADDRESSES: usize = 16;

    pub fn start(authorized: &[&KeyPair]) -> Sshd {
        Sshd::start_on(authorized, &[Ipv4Addr::LOCALHOST])
    }

    /// Like [`Sshd::start`], listening on each of `addresses` (loopback only: 127.x.y.z), for
    /// benches that give many servers their own address.
    pub fn start_on(authorized: &[&KeyPair], addresses: &[Ipv4Addr]) -> Sshd {
        Sshd::start_at(authorized, addresses, free_port())
    }

    /// Like [`Sshd::start_on`], on `port`: several of them share a port on different addresses
    /// (one sshd listens on at most [`Sshd::MAX_ADDRESSES`]).
    pub fn start_at(authorized: &[&KeyPair], addresses: &[Ipv4Addr], port: u16) -> Sshd {
        assert!(
            !addresses.is_empty() && addresses.iter().all(Ipv4Addr::is_loopback),
            "the test sshd listens on loopback addresses only"
        );
        assert!(
            addresses.len() <= Sshd::MAX_ADDRESSES,
            "OpenSSH listens on at most {} addresses",
            Sshd::MAX_ADDRESSES
        );
        require("sshd", "openssh-server");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let stubs = Stubs::create(root);
        sh(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {}/host_key",
            root.display()
        ));
        let host_key_fingerprint = sh(&format!(
            "ssh-keygen -l -E sha256 -f {}/host_key.pub",
            root.display()
        ))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
        let host_key_md5 = sh(&format!(
            "ssh-keygen -l -E md5 -f {}/host_key.pub",
            root.display()
        ))
        .split_whitespace()
        .nth(1)
        .and_then(|fingerprint| fingerprint.strip_prefix("MD5:"))
        .unwrap()
        .to_owned();
        let keys: String = authorized.iter().map(|k| k.public.clone()).collect();
        std::fs::write(root.join("authorized_keys"), keys).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let r = root.display();
        let listen: String = addresses
            .iter()
            .map(|address| format!("ListenAddress {address}\n"))
            .collect();
        // MaxStartups: many probes connect at once; sshd's default drops some past 10.
        // HOME: the login shell runs each command; with the real home it would read the
        // user's ~/.bashrc (which, on machines with pyenv, rehashes under a lock shared by
        // every session: slow, and stuck for good after an interrupted run). A rescue
        // system's root has no such file.
        let config = format!(
            "Port {port}\n{listen}MaxStartups 256\nHostKey {r}/host_key\n\
             AuthorizedKeysFile {r}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPidFile {r}/sshd.pid\n\
             SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
             HOME={r}\n",
            stubs.dir.display()
        );
        std::fs::write(root.join("sshd_config"), config).unwrap();
        let log = root.join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(root.join("sshd_config"))
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd {
            port,
            host_key_fingerprint,
            host_key_md5,
            stubs,
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((addresses[0], port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    pub fn target(&self, key: &KeyPair) -> SshTarget {
        SshTarget {
            port: self.port,
            host_keys: HostKeys::trust_on_first_use(),
            ..SshTarget::new("127.0.0.1", key.private.clone())
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loop device over a temp file: the disk the installer writes to. Detaches on drop every
/// loop device backed by its file (also those the installer attached for the BOOT partition).
pub struct LoopDisk {
    device: String,
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopDisk {
    pub fn new(size: u64) -> LoopDisk {
        require("losetup", "mount");
        assert_eq!(
            sh("id -u").trim(),
            "0",
            "the installer tests need root: they attach loop devices and mount filesystems"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        std::fs::File::create(&file).unwrap().set_len(size).unwrap();
        let device = sh(&format!("losetup -f --show {}", file.display()))
            .trim()
            .to_owned();
        LoopDisk {
            device,
            file,
            _dir: dir,
        }
    }

    /// The device, after checking that it is still the one attached over our file.
    pub fn path(&self) -> &str {
        let backing = sh(&format!("losetup -n -O BACK-FILE {}", self.device));
        assert_eq!(
            Path::new(backing.trim()),
            self.file,
            "refusing {}: it is not the loop device this test created",
            self.device
        );
        &self.device
    }

    /// lsblk JSON listing this loop device as the server's only disk, for the `lsblk` stub.
    pub fn lsblk_json(&self) -> String {
        let name = self.path().trim_start_matches("/dev/").to_owned();
        let size = std::fs::metadata(&self.file).unwrap().len();
        serde_json::json!({"blockdevices": [{
            "name": name, "type": "disk", "size": size, "uuid": null,
            "model": "loop disk of the test", "wwn": null,
        }]})
        .to_string()
    }

    /// What the disk holds now.
    pub fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap()
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let attached = Command::new("losetup")
            .args(["-n", "-O", "NAME", "-j"])
            .arg(&self.file)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for device in attached.split_whitespace() {
            let _ = Command::new("losetup").args(["-d", device]).status();
        }
    }
}

/// Byte range of the partition named `name` in a GPT disk image or device.
pub fn partition(disk: &Path, name: &str) -> (u64, u64) {
    let json: serde_json::Value =
        serde_json::from_str(&sh(&format!("sfdisk -J {}", disk.display()))).unwrap();
    let table = &json["partitiontable"];
    let sector = table["sectorsize"].as_u64().unwrap_or(512);
    let p = table["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no partition {name}"));
    (
        p["start"].as_u64().unwrap() * sector,
        p["size"].as_u64().unwrap() * sector,
    )
}

/// Runs `f` with the BOOT partition of `disk` mounted, then unmounts and detaches it.
pub fn with_boot_mounted<T>(disk: &Path, f: impl FnOnce(&Path) -> T) -> T {
    let (start, size) = partition(disk, "BOOT");
    let device = sh(&format!(
        "losetup -f --show -o {start} --sizelimit {size} {}",
        disk.display()
    ))
    .trim()
    .to_owned();
    let mount = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args([&device, &mount.path().display().to_string()])
        .status()
        .unwrap()
        .success();
    let result =
        mounted.then(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(mount.path()))));
    if mounted {
        let _ = Command::new("umount").arg(mount.path()).status();
    }
    let _ = Command::new("losetup").args(["-d", &device]).status();
    match result {
        Some(Ok(value)) => value,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => panic!("mounting BOOT of {} failed", disk.display()),
    }
}

/// A Talos-like disk image: GPT with EFI, BOOT (ext2 with `grub/grub.cfg`) and META partitions,
/// pseudo-random data elsewhere; with its zstd and xz compressed forms.
pub struct TestImage {
    pub raw: Vec<u8>,
    pub zst: Vec<u8>,
    pub xz: Vec<u8>,
    pub grub_cfg: String,
}

impl TestImage {
    pub fn build(size_mib: u64) -> TestImage {
        require("sfdisk", "fdisk");
        require("mkfs.ext2", "e2fsprogs");
        require("zstd", "zstd");
        require("xz", "xz-utils");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("talos.raw");
        // Pseudo-random content, so a misplaced byte shows.
        let mut data = vec![0u8; (size_mib << 20) as usize];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(&path, &data).unwrap();
        let layout = "label: gpt\n\
            size=2MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI\"\n\
            size=8MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"BOOT\"\n\
            type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"META\"\n";
        let mut sfdisk = Command::new("sfdisk")
            .args(["-q", &path.display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        sfdisk
            .stdin
            .take()
            .unwrap()
            .write_all(layout.as_bytes())
            .unwrap();
        assert!(sfdisk.wait().unwrap().success(), "sfdisk failed");
        let (start, size) = partition(&path, "BOOT");
        let device = sh(&format!(
            "losetup -f --show -o {start} --sizelimit {size} {}",
            path.display()
        ))
        .trim()
        .to_owned();
        let formatted = Command::new("mkfs.ext2")
            .args(["-q", "-L", "BOOT", &device])
            .output()
            .unwrap();
        let _ = Command::new("losetup").args(["-d", &device]).status();
        assert!(
            formatted.status.success(),
            "mkfs.ext2: {}",
            String::from_utf8_lossy(&formatted.stderr)
        );
        let grub_cfg = std::fs::read_to_string(Path::new(DATA).join("grub.cfg")).unwrap();
        with_boot_mounted(&path, |boot| {
            std::fs::create_dir_all(boot.join("grub")).unwrap();
            std::fs::write(boot.join("grub/grub.cfg"), &grub_cfg).unwrap();
        });
        sh(&format!(
            "zstd -q -T0 -3 -f {p} -o {p}.zst && xz -q -T0 -0 -k -f {p}",
            p = path.display()
        ));
        TestImage {
            raw: std::fs::read(&path).unwrap(),
            zst: std::fs::read(path.with_extension("raw.zst")).unwrap(),
            xz: std::fs::read(path.with_extension("raw.xz")).unwrap(),
            grub_cfg,
        }
    }
}

/// A tiny HTTP/1.0 server on 127.0.0.1 answering GETs from a path → body table, 404 otherwise.
pub struct HttpServer {
    pub base_url: String,
    files: Arc<Mutex<HashMap<String, File>>>,
    active: Arc<AtomicUsize>,
}

/// A body, and how fast to send it (bytes per second; `None`: as fast as possible).
#[derive(Clone)]
struct File {
    body: Arc<Vec<u8>>,
    rate: Option<usize>,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<Mutex<HashMap<String, File>>> = Arc::default();
        let active = Arc::new(AtomicUsize::new(0));
        let (table, counter) = (files.clone(), active.clone());
        // The thread ends with the test binary; it owns nothing but the listener.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (table, counter) = (table.clone(), counter.clone());
                std::thread::spawn(move || serve(stream, &table, &counter));
            }
        });
        HttpServer {
            base_url,
            files,
            active,
        }
    }

    pub fn put(&self, path: &str, body: Vec<u8>) -> String {
        self.put_file(
            path,
            File {
                body: Arc::new(body),
                rate: None,
            },
        )
    }

    /// Serves `body` at about `rate` bytes per second.
    pub fn put_slow(&self, path: &str, body: Vec<u8>, rate: usize) -> String {
        self.put_file(
            path,
            File {
                body: Arc::new(body),
                rate: Some(rate),
            },
        )
    }

    fn put_file(&self, path: &str, file: File) -> String {
        self.files.lock().unwrap().insert(path.to_owned(), file);
        format!("{}{path}", self.base_url)
    }

    /// How many bodies are being sent right now.
    pub fn active_transfers(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, table: &Mutex<HashMap<String, File>>, active: &AtomicUsize) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let Some(file) = table.lock().unwrap().get(&path).cloned() else {
        let _ = stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
        return;
    };
    active.fetch_add(1, Ordering::SeqCst);
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        file.body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| match file.rate {
            None => stream.write_all(&file.body),
            Some(rate) => {
                let chunk = (rate / 20).max(1);
                for part in file.body.chunks(chunk) {
                    stream.write_all(part)?;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(())
            }
        });
    active.fetch_sub(1, Ordering::SeqCst);
}

/// A TCP proxy on 127.0.0.1 in front of sshd whose connections the test can cut, as a network
/// failure would.
pub struct CuttableProxy {
    pub port: u16,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl CuttableProxy {
    pub fn start(upstream_port: u16) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let open = streams.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let mut all = open.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CuttableProxy { port, streams }
    }

    /// Cuts every connection through the proxy.
    pub fn cut(&self) {
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

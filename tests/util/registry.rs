//! A real OCI registry for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a
//! temporary storage directory, its Prometheus metrics on a debug address, optionally behind htpasswd
//! Basic auth. The packaged configuration listens on all interfaces, so the fixture writes its own.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    pub addr: SocketAddr,
    pub debug: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

const BIN: &str = "/usr/bin/docker-registry";

impl Registry {
    /// Starts it; `basic` puts it behind htpasswd with that user and password.
    pub fn start(basic: Option<(&str, &str)>) -> Registry {
        assert!(
            std::path::Path::new(BIN).exists(),
            "{BIN} is missing: install it with `apt-get install -y docker-registry` (./scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let (addr, debug) = (free_addr(), free_addr());
        let mut auth = String::new();
        if let Some((user, password)) = basic {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd is missing: install it with `apt-get install -y apache2-utils`");
            let htpasswd: PathBuf = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: regbench\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  relativeurls: true\n  debug:\n    addr: {debug}\n    prometheus:\n      enabled: true\n      path: /metrics\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(BIN)
            .args(["serve", config_path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reg = Registry {
            addr,
            debug,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registry's process, for watching it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! nginx (Debian's nginx-light) as an independent HTTP server for tests: it compresses with its own
//! gzip module, speaks HTTP/2 (h2c with prior knowledge on a second port), and logs what each
//! request asked for. One foreground process, everything in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    /// HTTP/1.1.
    pub addr: SocketAddr,
    /// HTTP/2 with prior knowledge (h2c).
    pub h2c: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

const BIN: &str = "/usr/sbin/nginx";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Nginx {
    /// Serves `files` (name, content) from its root, gzip-compressing JSON and text; the access
    /// log has one `METHOD URI HOST ACCEPT-ENCODING` line per request.
    pub fn start(files: &[(&str, &[u8])]) -> Nginx {
        assert!(
            Path::new(BIN).exists(),
            "{BIN} is missing: install it with `apt-get install -y nginx-light` (./scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir(&root).unwrap();
        for (name, content) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let (addr, h2c) = (free_addr(), free_addr());
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  types {{ application/json json; text/plain txt; }}\n  default_type application/octet-stream;\n\
               log_format ae '$request_method $request_uri $http_host $http_accept_encoding';\n  access_log {d}/access.log ae;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               gzip on;\n  gzip_types application/json text/plain;\n  gzip_min_length 20;\n\
               server {{\n    listen {addr};\n    listen {h2c} http2;\n    root {root};\n  }}\n}}\n",
            root = root.display()
        );
        let conf: PathBuf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(BIN)
            .args(["-p", &d.to_string(), "-c", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let n = Nginx {
            addr,
            h2c,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while [addr, h2c]
            .iter()
            .any(|a| std::net::TcpStream::connect(a).is_err())
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {addr} and {h2c}: {}",
                std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    /// Access log lines so far (`METHOD URI HOST ACCEPT-ENCODING`, `-` for a header not sent), emptied.
    pub fn take_log(&self) -> Vec<String> {
        let path = self.dir.path().join("access.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, "").unwrap();
        text.lines().map(str::to_string).collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

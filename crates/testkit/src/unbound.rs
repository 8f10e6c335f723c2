//! A real Unbound resolver for tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UNBOUND: &str = "/usr/sbin/unbound";
const CHECKCONF: &str = "/usr/sbin/unbound-checkconf";

/// Whether `unbound`, `unbound-checkconf` and `dig` are here (see
/// [`crate::required`]).
pub fn present() -> bool {
    let dig = Command::new("dig")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    crate::required(
        Path::new(UNBOUND).exists() && Path::new(CHECKCONF).exists() && dig,
        "unbound and dig are needed (Debian packages `unbound` and `bind9-dnsutils`)",
    )
}

/// A running Unbound, killed when dropped.
#[derive(Debug)]
pub struct Unbound {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `dig` got: the status word and the last field of each answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: String,
    pub data: Vec<String>,
}

impl Answer {
    /// An expected answer.
    pub fn new(status: &str, data: &[&str]) -> Answer {
        Answer {
            status: status.to_string(),
            data: data.iter().map(|d| (*d).to_string()).collect(),
        }
    }
}

impl Unbound {
    /// Starts `unbound -d` on 127.0.0.1 with `body` appended to the
    /// `server:` clause (further clauses may follow in it). Every client on
    /// 127.0.0.0/8 is allowed. Panics with the log when it does not come
    /// up within 30 s.
    pub fn start(dir: &Path, name: &str, body: &str) -> Unbound {
        let port = crate::free_port();
        let log = dir.join(format!("{name}.log"));
        let conf = dir.join(format!("{name}.conf"));
        let text = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  \
             use-syslog: no\n  logfile: \"{log}\"\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{dir}\"\n  pidfile: \"{dir}/{name}.pid\"\n  num-threads: 1\n  \
             access-control: 127.0.0.0/8 allow\n  verbosity: 1\n  qname-minimisation: no\n  \
             do-not-query-localhost: no\n{body}\nremote-control:\n  control-enable: no\n",
            log = log.display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text).expect("write config");
        let check = Command::new(CHECKCONF)
            .arg(&conf)
            .output()
            .expect("run unbound-checkconf");
        assert!(
            check.status.success(),
            "unbound-checkconf {name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(UNBOUND)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unbound");
        let mut server = Unbound { child, port, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("unbound exited with {status}:\n{}", self.log_text());
            }
            let ok = Command::new("dig")
                .args(["@127.0.0.1", "-p", &self.port.to_string()])
                .args(["+time=1", "+tries=1", "version.server", "CH", "TXT"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "unbound not ready on port {}:\n{}",
            self.port,
            self.log_text()
        );
    }

    /// What Unbound logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks for `name`/`qtype` from 127.0.0.1.
    pub fn query(&self, name: &str, qtype: &str) -> Answer {
        self.query_from("127.0.0.1", name, qtype)
    }

    /// Asks for `name`/`qtype` with `source` (a loopback address) as the
    /// client address.
    pub fn query_from(&self, source: &str, name: &str, qtype: &str) -> Answer {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &self.port.to_string(), "-b", source])
            .args(["+time=3", "+tries=2", "+noall", "+comments", "+answer"])
            .args([name, qtype])
            .output()
            .expect("run dig");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("no status in dig output:\n{text}"))
            .to_string();
        let data = text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect();
        Answer { status, data }
    }
}

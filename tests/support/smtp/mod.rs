//! A real SMTP server for the tests: `aiosmtpd` (PyPI) with STARTTLS required, on a free port,
//! with a self-signed certificate made by `openssl` for this run. Every message it accepts
//! becomes a file the test reads. `tests/run.sh` installs aiosmtpd into `target/smtp-venv`;
//! `DESKGATE_TEST_PYTHON` names another interpreter that has it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpServer {
    pub port: u16,
    cert: PathBuf,
    key: PathBuf,
    /// The certificate the server presents; the gateway is told to trust it.
    pub ca_file: PathBuf,
    maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DESKGATE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/smtp-venv/bin/python");
    assert!(
        venv.exists(),
        "the SMTP tests need aiosmtpd: run tests/run.sh, or `python3 -m venv target/smtp-venv && target/smtp-venv/bin/pip install aiosmtpd`"
    );
    venv
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl SmtpServer {
    /// A server that accepts every message.
    pub async fn start() -> SmtpServer {
        Self::spawn(false).await
    }

    /// A server that answers every recipient with 550.
    pub async fn refusing() -> SmtpServer {
        Self::spawn(true).await
    }

    async fn spawn(refuse: bool) -> SmtpServer {
        tokio::task::spawn_blocking(move || Self::spawn_blocking(refuse))
            .await
            .expect("smtp server start")
    }

    fn spawn_blocking(refuse: bool) -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            // An end-entity certificate: rustls refuses a CA certificate presented by a server.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "openssl could not make a certificate");
        let maildir = dir.path().join("mail");
        std::fs::create_dir_all(&maildir).expect("maildir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp/server.py");
        // A port taken between our probe and the server's bind: try again with another.
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = launch(&script, port, &maildir, &cert, &key, refuse) {
                return SmtpServer {
                    port,
                    ca_file: cert.clone(),
                    cert,
                    key,
                    maildir,
                    child,
                    _dir: dir,
                };
            }
        }
        panic!("the SMTP server did not start");
    }

    /// Stops the server: its port then refuses connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port with the same certificate.
    pub async fn restart(&mut self, refuse: bool) {
        self.stop();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp/server.py");
        let (port, maildir, cert, key) = (
            self.port,
            self.maildir.clone(),
            self.cert.clone(),
            self.key.clone(),
        );
        self.child = tokio::task::spawn_blocking(move || {
            launch(&script, port, &maildir, &cert, &key, refuse)
        })
        .await
        .expect("restart")
        .expect("the SMTP server restarts on its port");
    }

    /// The directory each received message is written to (`<n>.eml`), for readers outside
    /// this process (the browser flows).
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.maildir)
            .expect("maildir")
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "eml").then_some((n, p))
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).expect("mail"))
            .collect()
    }

    /// Waits until `n` messages have arrived and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + crate::WAIT;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} emails, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The six-digit code in a code email.
pub fn code_in(mail: &str) -> String {
    let at = mail
        .find("Your code: ")
        .unwrap_or_else(|| panic!("no code in the email:\n{mail}"));
    let code: String = mail[at + "Your code: ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    assert_eq!(code.len(), 6, "code in {mail}");
    code
}

/// Starts server.py and waits for its "ready"; `None` if it did not come up (port taken).
fn launch(
    script: &Path,
    port: u16,
    maildir: &Path,
    cert: &Path,
    key: &Path,
    refuse: bool,
) -> Option<Child> {
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg("--port")
        .arg(port.to_string())
        .arg("--maildir")
        .arg(maildir)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if refuse {
        cmd.arg("--refuse");
    }
    let mut child = cmd.spawn().expect("start the SMTP server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    if line.trim() == "ready" {
        return Some(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

//! A real SMTP server for the tests: `aiosmtpd` (PyPI) on a free port, with STARTTLS required
//! or implicit TLS, optionally with SMTP AUTH, and a self-signed certificate made by `openssl`
//! for this run. Every message it accepts becomes a file the test reads, decoded from MIME.
//! `tests/run.sh` installs the pinned aiosmtpd into `target/smtp-venv`; `DESKGATE_TEST_PYTHON`
//! names another interpreter that has it. [`SilentListener`] is the other kind of broken server:
//! it accepts connections and never says a word.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How the test server secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP upgraded with STARTTLS, which the server requires.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

/// What kind of SMTP server to start.
#[derive(Clone, Debug)]
pub struct Options {
    pub tls: Tls,
    /// SMTP AUTH required with this user name and password.
    pub auth: Option<(String, String)>,
    /// Answer every recipient with 550.
    pub refuse: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: Tls::Starttls,
            auth: None,
            refuse: false,
        }
    }
}

pub struct SmtpServer {
    pub port: u16,
    pub options: Options,
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
        "the SMTP tests need aiosmtpd: run tests/run.sh, or `python3 -m venv target/smtp-venv && target/smtp-venv/bin/pip install aiosmtpd==1.4.6`"
    );
    venv
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl SmtpServer {
    /// A server that accepts every message (STARTTLS, no AUTH).
    pub async fn start() -> SmtpServer {
        Self::with(Options::default()).await
    }

    /// A server that answers every recipient with 550.
    pub async fn refusing() -> SmtpServer {
        Self::with(Options {
            refuse: true,
            ..Options::default()
        })
        .await
    }

    pub async fn with(options: Options) -> SmtpServer {
        tokio::task::spawn_blocking(move || Self::spawn_blocking(options))
            .await
            .expect("smtp server start")
    }

    fn spawn_blocking(options: Options) -> SmtpServer {
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
            if let Some(child) = launch(&script, port, &maildir, &cert, &key, &options, dir.path())
            {
                return SmtpServer {
                    port,
                    options,
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

    /// Starts the server again on the same port with the same certificate and options,
    /// refusing every recipient or not.
    pub async fn restart(&mut self, refuse: bool) {
        self.stop();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp/server.py");
        self.options.refuse = refuse;
        let (port, maildir, cert, key, options, dir) = (
            self.port,
            self.maildir.clone(),
            self.cert.clone(),
            self.key.clone(),
            self.options.clone(),
            self._dir.path().to_path_buf(),
        );
        self.child = tokio::task::spawn_blocking(move || {
            launch(&script, port, &maildir, &cert, &key, &options, &dir)
        })
        .await
        .expect("restart")
        .expect("the SMTP server restarts on its port");
    }

    /// The directory each received message is written to (`<n>.eml`, then `<n>.txt` decoded), for readers outside
    /// this process (the browser flows).
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Every message received so far, oldest first, as its reader sees it: the From, To and
    /// Subject headers decoded, a blank line, the text body decoded.
    pub fn mails(&self) -> Vec<String> {
        self.files("txt")
            .into_iter()
            .map(|p| std::fs::read_to_string(p).expect("mail"))
            .collect()
    }

    /// Every message received so far, oldest first, exactly as it came over the wire.
    pub fn raw_mails(&self) -> Vec<Vec<u8>> {
        self.files("txt")
            .into_iter()
            .map(|p| std::fs::read(p.with_extension("eml")).expect("raw mail"))
            .collect()
    }

    /// `<n>.<ext>` files of the mail dir, by `n`. The `.txt` is written after the `.eml`, so
    /// listing the `.txt` files sees only complete messages.
    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.maildir)
            .expect("maildir")
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == ext).then_some((n, p))
            })
            .collect();
        names.sort();
        names.into_iter().map(|(_, p)| p).collect()
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

/// The subject line of a mail from [`SmtpServer::mails`].
pub fn subject_of(mail: &str) -> &str {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("no subject in the email:\n{mail}"))
}

/// The body of a mail (after the headers, which end at the first blank line).
pub fn body_of(mail: &str) -> &str {
    let crlf = mail.find("\r\n\r\n").map(|i| (i, 4));
    let lf = mail.find("\n\n").map(|i| (i, 2));
    match [crlf, lf].into_iter().flatten().min() {
        Some((i, n)) => &mail[i + n..],
        None => "",
    }
}

/// The six-digit code in a code email, in any of its languages: the one run of exactly six
/// ASCII digits in the body.
pub fn code_in(mail: &str) -> String {
    let body = body_of(mail);
    let runs: Vec<&str> = body
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| r.len() == 6)
        .collect();
    assert_eq!(runs.len(), 1, "one six-digit code in the email:\n{mail}");
    runs[0].to_string()
}

/// Something that accepts SMTP connections and never answers, not even the greeting: a server
/// that hangs, or a firewall that swallows the traffic.
pub struct SilentListener {
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentListener {
    pub async fn start() -> SilentListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Kept open and never written to or read from.
                held.push(stream);
            }
        });
        SilentListener {
            port,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts server.py and waits for its "ready"; `None` if it did not come up (port taken).
/// `dir` holds the AUTH password file.
fn launch(
    script: &Path,
    port: u16,
    maildir: &Path,
    cert: &Path,
    key: &Path,
    options: &Options,
    dir: &Path,
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
    cmd.arg("--tls").arg(match options.tls {
        Tls::Starttls => "starttls",
        Tls::Implicit => "implicit",
    });
    if let Some((user, password)) = &options.auth {
        let file = dir.join("auth-password");
        std::fs::write(&file, password).expect("password file");
        cmd.arg("--auth-user")
            .arg(user)
            .arg("--auth-password-file")
            .arg(file);
    }
    if options.refuse {
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

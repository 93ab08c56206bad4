//! Running the `sandbox` binary: a clean environment (nothing from the
//! caller's shell can change what a test tests), output drained by threads
//! (a full pipe never stalls the child), and a timeout (a hang fails the
//! test instead of stalling the suite).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one run may take unless the test says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Path to the built `sandbox` binary.
pub fn sandbox_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sandbox"))
}

/// Variables the binary (or the libraries under it) may read, removed
/// before every run: the test sets what it means to set.
fn inherited_and_unwanted(key: &str) -> bool {
    key.starts_with("SANDBOX_")
        || key.starts_with("PG")
        || matches!(
            key,
            "DATABASE_URL" | "NO_COLOR" | "CLICOLOR" | "CLICOLOR_FORCE" | "COLUMNS" | "LINES"
        )
}

/// Removes from `c`'s environment what the binary may read from the
/// caller's shell; for a wrapper (a pseudo-terminal) that starts the binary.
pub fn without_inherited_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if inherited_and_unwanted(k) {
                c.env_remove(k);
            }
        }
    }
}

/// One finished run of the binary, for assertions that show everything on
/// failure.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, with URLs masked (they may carry a password).
    pub what: String,
    /// The exit code; -1 when a signal ended the process.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub millis: u64,
}

impl Run {
    /// A finished run of some other program (psql, sqlite3), to assert on
    /// the same way.
    pub fn of_output(what: &str, out: &std::process::Output) -> Run {
        Run {
            what: what.to_string(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            millis: 0,
        }
    }

    pub fn show(&self) -> String {
        format!(
            "`{}` exited {} after {} ms\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.millis, self.stdout, self.stderr
        )
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "expected exit {code}: {}", self.show());
        self
    }

    pub fn ok(&self) -> &Run {
        self.code(0)
    }

    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}: {}",
            self.show()
        );
        self
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            self.show()
        );
        self
    }

    /// The error is printed once, on stderr (or, with `--json`, as
    /// `{"error": {...}}` on stdout), and holds every needle.
    pub fn error_has(&self, needles: &[&str]) -> &Run {
        let json_message = serde_json::from_str::<serde_json::Value>(&self.stdout)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
        let text = match json_message {
            Some(m) => {
                assert!(
                    !self.stderr.contains("error:"),
                    "an error on stdout and stderr: {}",
                    self.show()
                );
                m
            }
            None => {
                assert_eq!(
                    self.stderr
                        .lines()
                        .filter(|l| l.starts_with("error:"))
                        .count(),
                    1,
                    "one error line expected: {}",
                    self.show()
                );
                self.stderr.clone()
            }
        };
        for n in needles {
            assert!(text.contains(n), "the error lacks {n:?}: {}", self.show());
        }
        self
    }

    /// A refusal: exit 1, and the output names every needle.
    pub fn refused(&self, needles: &[&str]) -> &Run {
        self.code(1);
        for n in needles {
            assert!(
                self.all().contains(n),
                "output lacks {n:?}: {}",
                self.show()
            );
        }
        self
    }

    /// The receipt id a push printed (`Receipt <id>`).
    pub fn receipt(&self) -> String {
        self.stdout
            .split_whitespace()
            .skip_while(|w| *w != "Receipt")
            .nth(1)
            .unwrap_or_else(|| panic!("no receipt id: {}", self.show()))
            .to_string()
    }

    /// The arguments of the command this run advises right after `lead`
    /// (e.g. "undo with: "), starting with `sandbox`, as printed: up to the
    /// closing backtick or the end of the line. The test's paths hold no
    /// spaces.
    pub fn advised_args(&self, lead: &str) -> Vec<String> {
        let all = self.all();
        let start = all
            .find(lead)
            .map(|at| at + lead.len())
            .unwrap_or_else(|| panic!("no advice after `{lead}`: {}", self.show()));
        let rest = &all[start..];
        let end = rest.find(['`', '\n']).unwrap_or(rest.len());
        rest[..end]
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// A tool error is one `error: ...` chain, never a Rust panic.
    pub fn clear_error(&self) -> &Run {
        assert!(
            self.stderr.starts_with("error: ") && !self.stderr.contains("panicked"),
            "not a clear error message: {}",
            self.show()
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.show())
    }
}

/// A command line as shown in failures: never a URL or a password.
fn shown(args: &[String]) -> String {
    let shown: Vec<&str> = args
        .iter()
        .map(|a| {
            if a.contains("://") || a.to_lowercase().contains("password") {
                "<URL>"
            } else {
                a.as_str()
            }
        })
        .collect();
    format!("sandbox {}", shown.join(" "))
}

/// One invocation of the binary, built up and then run or spawned:
/// `Sandbox::new(&["pull", ...]).env("SANDBOX_DATABASE_URL", url).run()`.
pub struct Sandbox {
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Sandbox {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Sandbox {
        Sandbox {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            env: Vec::new(),
            dir: None,
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets a variable for this run (after the clean-up, so it wins).
    pub fn env(mut self, key: &str, value: &str) -> Sandbox {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Sandbox {
        for (k, v) in vars {
            self.env.push((k.to_string(), v.to_string()));
        }
        self
    }

    pub fn dir(mut self, dir: &Path) -> Sandbox {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Bytes fed to stdin (else stdin is /dev/null).
    pub fn stdin(mut self, bytes: &[u8]) -> Sandbox {
        self.stdin = Some(bytes.to_vec());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Sandbox {
        self.timeout = timeout;
        self
    }

    /// The command with the clean environment; for tests that need a
    /// `Command` of their own (e.g. to kill it at a chosen moment).
    pub fn command(&self) -> Command {
        let mut c = Command::new(sandbox_bin());
        c.args(&self.args);
        without_inherited_env(&mut c);
        c.env("NO_COLOR", "1");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    pub fn spawn(self) -> Proc {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", sandbox_bin().display()));
        if let Some(bytes) = self.stdin {
            let mut w = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || {
                use std::io::Write;
                // The child may exit without reading: not the test's failure.
                let _ = w.write_all(&bytes);
            });
        }
        let out = drain(child.stdout.take().expect("piped stdout"));
        let err = drain(child.stderr.take().expect("piped stderr"));
        Proc {
            what: shown(&self.args),
            child,
            started: Instant::now(),
            timeout: self.timeout,
            out: Some(out),
            err: Some(err),
        }
    }

    /// Runs to the end (or the timeout, which fails the test).
    pub fn run(self) -> Run {
        self.spawn().finish()
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error ends the capture; what was read is still shown.
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A running `sandbox` process.
pub struct Proc {
    pub what: String,
    pub child: Child,
    pub started: Instant,
    timeout: Duration,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

impl Proc {
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait for sandbox").is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix). Returns whether the
    /// process was still running when the signal went out.
    pub fn kill9(&mut self) -> bool {
        let alive = self.running();
        if alive {
            // It may exit between the check and the signal: fine either way.
            let _ = self.child.kill();
        }
        alive
    }

    /// Waits for the end; a run longer than its timeout is killed and fails.
    pub fn finish(mut self) -> Run {
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for sandbox") {
                break s;
            }
            if self.started.elapsed() > self.timeout {
                let _ = self.child.kill();
                let s = self.child.wait().expect("wait for the killed sandbox");
                let run = self.collect(s);
                panic!(
                    "HANG: still running after {:?}, killed: {}",
                    self.timeout,
                    run.show()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.collect(status)
    }

    fn collect(&mut self, status: std::process::ExitStatus) -> Run {
        let millis = self.started.elapsed().as_millis() as u64;
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            let bytes = h
                .expect("output collected once")
                .join()
                .expect("output reader");
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Run {
            what: self.what.clone(),
            code: status.code().unwrap_or(-1),
            stdout: text(self.out.take()),
            stderr: text(self.err.take()),
            millis,
        }
    }
}

/// Runs the binary with a clean environment plus `env`, to the end.
pub fn run_sandbox(args: &[&str], env: &[(&str, &str)]) -> Run {
    Sandbox::new(args).envs(env).run()
}

/// Runs the binary with a clean environment, to the end.
pub fn sandbox(args: &[&str]) -> Run {
    Sandbox::new(args).run()
}

//! The built-in commands of a simulated container and a small POSIX-like shell (`sh -c`).
//!
//! Commands: `cat`, `tar` (c/x/t, to/from stdin/stdout, `-C`), `ls`, `mkdir`, `echo`, `env`,
//! `printenv`, `ps`, `sleep`, `true`, `false`, `:`, `test`/`[`, `pwd`, `hostname`, `rm`,
//! `touch`, `kill`, `sh`/`bash` (`-c` only), `exec`, plus the image's server (a command named
//! like the image, e.g. `nginx`, or `httpd`) which listens on the container's declared ports
//! until it is terminated. The shell understands quoting, `$VAR`/`${VAR}`/`$?`, `;`, `&&`, `||`,
//! `|` (buffered, not streamed), `&` (background), `NAME=value` prefixes, `>`, `>>`, `2>`,
//! `2>&1`, `<` and `cd`/`export`/`exit`/`trap`/`wait`. Anything else exits with 127 and
//! "command not found".

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{mpsc, watch};

use super::container::{AccessSink, SimContainer, image_short_name, quote_word};
use super::fs::{self, Entry, FsError};
use super::tar_cmd::tar_cmd;

/// Standard input of a process; clones share one underlying stream (as the commands of a shell
/// script share the shell's stdin).
#[derive(Clone)]
pub struct Stdin {
    inner: Arc<tokio::sync::Mutex<StdinInner>>,
}

struct StdinInner {
    rx: Option<mpsc::Receiver<Bytes>>,
    pending: Vec<Bytes>,
}

impl Stdin {
    fn from_parts(rx: Option<mpsc::Receiver<Bytes>>, pending: Vec<Bytes>) -> Stdin {
        Stdin {
            inner: Arc::new(tokio::sync::Mutex::new(StdinInner { rx, pending })),
        }
    }

    /// A stdin fed by a channel (closed channel = EOF).
    pub fn channel(rx: mpsc::Receiver<Bytes>) -> Stdin {
        Stdin::from_parts(Some(rx), Vec::new())
    }

    /// A stdin holding fixed bytes.
    pub fn bytes(data: Vec<u8>) -> Stdin {
        Stdin::from_parts(None, vec![Bytes::from(data)])
    }

    /// An empty stdin (`/dev/null`).
    pub fn null() -> Stdin {
        Stdin::from_parts(None, Vec::new())
    }

    /// Next chunk, or `None` at EOF.
    pub async fn next(&mut self) -> Option<Bytes> {
        let mut inner = self.inner.lock().await;
        if !inner.pending.is_empty() {
            return Some(inner.pending.remove(0));
        }
        match inner.rx.as_mut() {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }

    /// Everything up to EOF.
    pub async fn read_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = self.next().await {
            out.extend_from_slice(&b);
        }
        out
    }
}

/// Standard output or error of a process.
#[derive(Clone)]
pub enum Sink {
    /// Streamed to a channel.
    Chan(mpsc::Sender<Bytes>),
    /// Collected in memory (redirections, pipes).
    Buf(Arc<Mutex<Vec<u8>>>),
    /// Discarded.
    Null,
}

impl Sink {
    /// Write bytes; errors (a closed reader) are ignored, as with a broken pipe.
    pub async fn write(&self, data: impl Into<Bytes>) {
        let data = data.into();
        if data.is_empty() {
            return;
        }
        match self {
            Sink::Chan(tx) => {
                let _ = tx.send(data).await;
            }
            Sink::Buf(b) => b
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&data),
            Sink::Null => {}
        }
    }

    /// Write a string.
    pub async fn print(&self, s: impl AsRef<str>) {
        self.write(Bytes::copy_from_slice(s.as_ref().as_bytes()))
            .await;
    }

    fn buffer() -> (Sink, Arc<Mutex<Vec<u8>>>) {
        let b = Arc::new(Mutex::new(Vec::new()));
        (Sink::Buf(Arc::clone(&b)), b)
    }
}

/// Everything a running command needs.
pub struct Ctx {
    /// The container.
    pub container: Arc<SimContainer>,
    /// PID of the exec'd process this command belongs to.
    pub pid: u32,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: String,
    /// Terminate signal.
    pub kill: watch::Receiver<bool>,
    /// Exit status of the last command (`$?`).
    pub last_status: i32,
    /// Set by `exit`.
    pub exit_requested: Option<i32>,
}

impl Ctx {
    /// A context for a new process in `container`.
    pub fn new(container: Arc<SimContainer>, pid: u32, kill: watch::Receiver<bool>) -> Ctx {
        Ctx {
            env: container.env.clone(),
            cwd: container.workdir.clone(),
            container,
            pid,
            kill,
            last_status: 0,
            exit_requested: None,
        }
    }

    fn getenv(&self, k: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn setenv(&mut self, k: &str, v: &str) {
        match self.env.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.env.push((k.to_string(), v.to_string())),
        }
    }

    /// A path relative to the working directory, made absolute.
    pub(super) fn path(&self, p: &str) -> String {
        fs::normalize(&self.cwd, p)
    }

    fn killed(&self) -> bool {
        *self.kill.borrow()
    }

    async fn wait_killed(&mut self) {
        let _ = self.kill.wait_for(|k| *k).await;
    }
}

/// I/O of one command.
pub struct Io {
    /// Standard input.
    pub stdin: Stdin,
    /// Standard output.
    pub stdout: Sink,
    /// Standard error.
    pub stderr: Sink,
}

type BoxFut<'a> = Pin<Box<dyn Future<Output = i32> + Send + 'a>>;

/// Run one command line (argv) in the container; returns the exit status.
pub fn run<'a>(ctx: &'a mut Ctx, argv: Vec<String>, io: Io) -> BoxFut<'a> {
    Box::pin(async move {
        let Some(name) = argv.first().cloned() else {
            return 0;
        };
        let cmd = if name.contains('/') {
            fs::basename(&name).to_string()
        } else {
            name.clone()
        };
        let args: Vec<String> = argv[1..].to_vec();
        let mut io = io;
        let short = image_short_name(&ctx.container.image);
        match cmd.as_str() {
            "true" | ":" => 0,
            "false" => 1,
            "echo" => echo(&args, &io).await,
            "cat" => cat(ctx, &args, &mut io).await,
            "ls" => ls(ctx, &args, &io).await,
            "mkdir" => mkdir(ctx, &args, &io).await,
            "rm" => rm(ctx, &args, &io).await,
            "touch" => touch(ctx, &args, &io).await,
            "pwd" => {
                io.stdout.print(format!("{}\n", ctx.cwd)).await;
                0
            }
            "hostname" => {
                io.stdout
                    .print(format!("{}\n", ctx.container.hostname))
                    .await;
                0
            }
            "env" | "printenv" => env(ctx, &cmd, &args, &io).await,
            "ps" => ps(ctx, &io).await,
            "sleep" => sleep(ctx, &args, &io).await,
            "test" => test(ctx, &args, &io).await,
            "[" => {
                if args.last().map(String::as_str) != Some("]") {
                    io.stderr.print("[: missing ']'\n").await;
                    return 2;
                }
                test(ctx, &args[..args.len() - 1], &io).await
            }
            "kill" => kill(ctx, &args, &io).await,
            "tar" => tar_cmd(ctx, &args, &mut io).await,
            "sh" | "bash" | "ash" | "dash" => sh(ctx, &cmd, &args, io).await,
            "exec" => run(ctx, args, io).await,
            "trap" | "wait" => 0,
            c if c == short || c == "nginx" || c == "httpd" => serve(ctx, &cmd, &io).await,
            _ => {
                io.stderr
                    .print(format!("{name}: command not found\n"))
                    .await;
                127
            }
        }
    })
}

async fn echo(args: &[String], io: &Io) -> i32 {
    let (newline, words) = match args.first().map(String::as_str) {
        Some("-n") => (false, &args[1..]),
        _ => (true, args),
    };
    let mut s = words.join(" ");
    if newline {
        s.push('\n');
    }
    io.stdout.print(s).await;
    0
}

async fn cat(ctx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let files: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') || *a == "-")
        .collect();
    if files.is_empty() {
        while let Some(b) = io.stdin.next().await {
            io.stdout.write(b).await;
        }
        return 0;
    }
    let mut status = 0;
    for f in files {
        if f == "-" {
            while let Some(b) = io.stdin.next().await {
                io.stdout.write(b).await;
            }
            continue;
        }
        let read = ctx.container.fs().read(&ctx.path(f));
        match read {
            Ok(data) => io.stdout.write(data).await,
            Err(e) => {
                io.stderr.print(format!("cat: {f}: {e}\n")).await;
                status = 1;
            }
        }
    }
    status
}

fn mode_string(e: &Entry) -> String {
    let mut s = String::from(if e.is_dir() { "d" } else { "-" });
    let m = e.mode();
    for shift in [6u32, 3, 0] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if m & 0o1000 != 0 {
        s.pop();
        s.push('t');
    }
    s
}

async fn ls(ctx: &mut Ctx, args: &[String], io: &Io) -> i32 {
    let mut long = false;
    let mut all = false;
    let mut paths = Vec::new();
    for a in args {
        if let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) {
            long |= flags.contains('l');
            all |= flags.contains('a') || flags.contains('A');
        } else {
            paths.push(a.clone());
        }
    }
    if paths.is_empty() {
        paths.push(".".into());
    }
    let many = paths.len() > 1;
    let mut status = 0;
    let mut out = String::new();
    let fmt = |name: &str, e: &Entry| -> String {
        if long {
            format!(
                "{} 1 root root {:>8} {} {name}\n",
                mode_string(e),
                e.size(),
                e.mtime().format("%b %e %H:%M")
            )
        } else {
            format!("{name}\n")
        }
    };
    for p in &paths {
        let abs = ctx.path(p);
        let listing: Option<String> = {
            let fs = ctx.container.fs();
            match fs.get(&abs) {
                None => None,
                Some(e) if !e.is_dir() => Some(fmt(p, e)),
                Some(_) => {
                    let mut s = String::new();
                    if many {
                        s.push_str(&format!("{p}:\n"));
                    }
                    if let Ok(children) = fs.list(&abs) {
                        for (name, e) in children {
                            if all || !name.starts_with('.') {
                                s.push_str(&fmt(&name, &e));
                            }
                        }
                    }
                    Some(s)
                }
            }
        };
        match listing {
            Some(s) => out.push_str(&s),
            None => {
                io.stderr
                    .print(format!(
                        "ls: cannot access '{p}': No such file or directory\n"
                    ))
                    .await;
                status = 2;
            }
        }
    }
    io.stdout.print(out).await;
    status
}

async fn mkdir(ctx: &mut Ctx, args: &[String], io: &Io) -> i32 {
    let parents = args.iter().any(|a| a == "-p" || a == "--parents");
    let mut mode = 0o755;
    let mut status = 0;
    let mut it = args.iter().peekable();
    let mut paths = Vec::new();
    while let Some(a) = it.next() {
        if a == "-m" {
            if let Some(m) = it.next() {
                mode = u32::from_str_radix(m, 8).unwrap_or(0o755);
            }
        } else if !a.starts_with('-') {
            paths.push(a.clone());
        }
    }
    if paths.is_empty() {
        io.stderr.print("mkdir: missing operand\n").await;
        return 1;
    }
    for p in paths {
        let abs = ctx.path(&p);
        let res = {
            let mut fs = ctx.container.fs();
            if parents {
                fs.mkdir_all(&abs, mode)
            } else {
                fs.mkdir(&abs, mode)
            }
        };
        if let Err(e) = res {
            io.stderr
                .print(format!("mkdir: cannot create directory '{p}': {e}\n"))
                .await;
            status = 1;
        }
    }
    status
}

async fn rm(ctx: &mut Ctx, args: &[String], io: &Io) -> i32 {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with('-'))
        .flat_map(|a| a.chars())
        .collect();
    let recursive = flags.contains('r') || flags.contains('R');
    let force = flags.contains('f');
    let mut status = 0;
    for p in args.iter().filter(|a| !a.starts_with('-')) {
        let abs = ctx.path(p);
        let res = {
            let mut fs = ctx.container.fs();
            if fs.is_dir(&abs) && !recursive {
                Err(FsError::IsDir)
            } else {
                fs.remove(&abs, recursive)
            }
        };
        match res {
            Ok(()) => {}
            Err(FsError::NotFound) if force => {}
            Err(e) => {
                io.stderr
                    .print(format!("rm: cannot remove '{p}': {e}\n"))
                    .await;
                status = 1;
            }
        }
    }
    status
}

async fn touch(ctx: &mut Ctx, args: &[String], io: &Io) -> i32 {
    let mut status = 0;
    for p in args.iter().filter(|a| !a.starts_with('-')) {
        let abs = ctx.path(p);
        let res = {
            let mut fs = ctx.container.fs();
            if fs.get(&abs).is_some() {
                fs.set_mtime(&abs, Utc::now());
                Ok(())
            } else {
                fs.write(&abs, Bytes::new(), None)
            }
        };
        if let Err(e) = res {
            io.stderr
                .print(format!("touch: cannot touch '{p}': {e}\n"))
                .await;
            status = 1;
        }
    }
    status
}

async fn env(ctx: &mut Ctx, cmd: &str, args: &[String], io: &Io) -> i32 {
    if cmd == "printenv" && !args.is_empty() {
        let mut status = 0;
        for a in args {
            match ctx.getenv(a) {
                Some(v) => io.stdout.print(format!("{v}\n")).await,
                None => status = 1,
            }
        }
        return status;
    }
    let mut out = String::new();
    for (k, v) in &ctx.env {
        out.push_str(&format!("{k}={v}\n"));
    }
    io.stdout.print(out).await;
    0
}

async fn ps(ctx: &mut Ctx, io: &Io) -> i32 {
    let mut out = String::from("PID   USER     TIME  COMMAND\n");
    let now = Utc::now();
    for (pid, cmdline, started) in ctx.container.processes() {
        let secs = (now - started).num_seconds().max(0);
        out.push_str(&format!(
            "{pid:>5} root     {:>2}:{:02} {cmdline}\n",
            secs / 60,
            secs % 60
        ));
    }
    io.stdout.print(out).await;
    0
}

fn parse_duration(s: &str) -> Option<Duration> {
    if s == "infinity" {
        return Some(Duration::from_secs(u64::MAX / 4));
    }
    let (num, mult) = match s.chars().last()? {
        's' => (&s[..s.len() - 1], 1.0),
        'm' => (&s[..s.len() - 1], 60.0),
        'h' => (&s[..s.len() - 1], 3600.0),
        'd' => (&s[..s.len() - 1], 86400.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    if v.is_nan() || v < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64((v * mult).min(1e12)))
}

async fn sleep(ctx: &mut Ctx, args: &[String], io: &Io) -> i32 {
    let mut total = Duration::ZERO;
    if args.is_empty() {
        io.stderr.print("sleep: missing operand\n").await;
        return 1;
    }
    for a in args {
        match parse_duration(a) {
            Some(d) => total = total.saturating_add(d),
            None => {
                io.stderr
                    .print(format!("sleep: invalid time interval '{a}'\n"))
                    .await;
                return 1;
            }
        }
    }
    if ctx.killed() {
        return 143;
    }
    tokio::select! {
        _ = tokio::time::sleep(total) => 0,
        _ = ctx.wait_killed() => 143,
    }
}

async fn test(ctx: &mut Ctx, args: &[String], _io: &Io) -> i32 {
    let t = |b: bool| if b { 0 } else { 1 };
    let (neg, args) = match args.first().map(String::as_str) {
        Some("!") => (true, &args[1..]),
        _ => (false, args),
    };
    let r = match args {
        [] => 1,
        [s] => t(!s.is_empty()),
        [op, p] => {
            let abs = ctx.path(p);
            let fs = ctx.container.fs();
            match op.as_str() {
                "-d" => t(fs.is_dir(&abs)),
                "-f" => t(fs.is_file(&abs)),
                "-e" => t(fs.get(&abs).is_some()),
                "-s" => t(fs.get(&abs).is_some_and(|e| e.size() > 0)),
                "-r" | "-w" => t(fs.get(&abs).is_some()),
                "-x" => t(fs.get(&abs).is_some_and(|e| e.mode() & 0o111 != 0)),
                "-z" => t(p.is_empty()),
                "-n" => t(!p.is_empty()),
                _ => 2,
            }
        }
        [a, op, b] => match op.as_str() {
            "=" | "==" => t(a == b),
            "!=" => t(a != b),
            "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" => {
                match (a.parse::<i64>(), b.parse::<i64>()) {
                    (Ok(x), Ok(y)) => t(match op.as_str() {
                        "-eq" => x == y,
                        "-ne" => x != y,
                        "-lt" => x < y,
                        "-le" => x <= y,
                        "-gt" => x > y,
                        _ => x >= y,
                    }),
                    _ => 2,
                }
            }
            _ => 2,
        },
        _ => 2,
    };
    if neg && r != 2 { 1 - r } else { r }
}

async fn kill(ctx: &mut Ctx, args: &[String], io: &Io) -> i32 {
    let mut status = 0;
    for a in args.iter().filter(|a| !a.starts_with('-')) {
        match a.parse::<u32>() {
            Ok(pid) if ctx.container.kill(pid) => {}
            Ok(1) => {} // PID 1 ignores signals it has no handler for.
            _ => {
                io.stderr
                    .print(format!("kill: ({a}) - No such process\n"))
                    .await;
                status = 1;
            }
        }
    }
    status
}

/// The image's server: listens on the container's declared ports (80 when none) until
/// terminated; its access log goes to its stdout.
async fn serve(ctx: &mut Ctx, name: &str, io: &Io) -> i32 {
    let ports = if ctx.container.declared_ports.is_empty() {
        vec![80]
    } else {
        ctx.container.declared_ports.clone()
    };
    let sink = match &io.stdout {
        Sink::Chan(tx) => AccessSink::Stdout(tx.clone()),
        _ => AccessSink::ContainerLog,
    };
    for p in &ports {
        if !ctx.container.listen(*p, ctx.pid, sink.clone()) {
            io.stderr
                .print(format!(
                    "{name}: [emerg] bind() to 0.0.0.0:{p} failed (98: Address already in use)\n"
                ))
                .await;
            ctx.container.end_process_listeners(ctx.pid);
            return 1;
        }
    }
    ctx.wait_killed().await;
    ctx.container.end_process_listeners(ctx.pid);
    0
}

async fn sh(ctx: &mut Ctx, cmd: &str, args: &[String], io: Io) -> i32 {
    match args.first().map(String::as_str) {
        Some("-c") => match args.get(1) {
            Some(script) => {
                let mut child = Ctx {
                    container: Arc::clone(&ctx.container),
                    pid: ctx.pid,
                    env: ctx.env.clone(),
                    cwd: ctx.cwd.clone(),
                    kill: ctx.kill.clone(),
                    last_status: 0,
                    exit_requested: None,
                };
                run_script(&mut child, script, io).await
            }
            None => {
                io.stderr
                    .print(format!("{cmd}: -c: option requires an argument\n"))
                    .await;
                2
            }
        },
        Some(f) => {
            let abs = ctx.path(f);
            let read = ctx.container.fs().read(&abs);
            match read {
                Ok(script) => {
                    let script = String::from_utf8_lossy(&script).into_owned();
                    run_script(ctx, &script, io).await
                }
                Err(e) => {
                    io.stderr.print(format!("{cmd}: {f}: {e}\n")).await;
                    127
                }
            }
        }
        None => {
            // An interactive shell reading commands from stdin.
            let mut io = io;
            let script = String::from_utf8_lossy(&io.stdin.read_all().await).into_owned();
            run_script(ctx, &script, io).await
        }
    }
}

/// A token of the shell language.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Op(&'static str),
}

fn tokenize(ctx: &Ctx, script: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let mut word = String::new();
    let mut in_word = false;
    let expand = |chars: &[char], i: &mut usize, out: &mut String| {
        // chars[*i] == '$'
        let start = *i + 1;
        if start < chars.len() && chars[start] == '?' {
            out.push_str(&ctx.last_status.to_string());
            *i = start + 1;
        } else if start < chars.len() && chars[start] == '{' {
            let end = chars[start..].iter().position(|c| *c == '}');
            match end {
                Some(e) => {
                    let name: String = chars[start + 1..start + e].iter().collect();
                    out.push_str(ctx.getenv(&name).unwrap_or(""));
                    *i = start + e + 1;
                }
                None => {
                    out.push('$');
                    *i = start;
                }
            }
        } else {
            let mut j = start;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if j == start {
                out.push('$');
                *i = start;
            } else {
                let name: String = chars[start..j].iter().collect();
                out.push_str(ctx.getenv(&name).unwrap_or(""));
                *i = j;
            }
        }
    };
    macro_rules! flush {
        () => {
            if in_word {
                toks.push(Tok::Word(std::mem::take(&mut word)));
                #[allow(unused_assignments)]
                {
                    in_word = false;
                }
            }
        };
    }
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                flush!();
                i += 1;
            }
            '\n' | ';' => {
                flush!();
                toks.push(Tok::Op(";"));
                i += 1;
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '&' => {
                flush!();
                if chars.get(i + 1) == Some(&'&') {
                    toks.push(Tok::Op("&&"));
                    i += 2;
                } else {
                    toks.push(Tok::Op("&"));
                    i += 1;
                }
            }
            '|' => {
                flush!();
                if chars.get(i + 1) == Some(&'|') {
                    toks.push(Tok::Op("||"));
                    i += 2;
                } else {
                    toks.push(Tok::Op("|"));
                    i += 1;
                }
            }
            '>' | '<' => {
                // `2>` and `2>&1` when the word so far is exactly "2".
                let fd2 = in_word && word == "2";
                if fd2 {
                    word.clear();
                    in_word = false;
                } else {
                    flush!();
                }
                if c == '<' {
                    toks.push(Tok::Op("<"));
                    i += 1;
                } else if fd2 && chars.get(i + 1) == Some(&'&') && chars.get(i + 2) == Some(&'1') {
                    toks.push(Tok::Op("2>&1"));
                    i += 3;
                } else if chars.get(i + 1) == Some(&'>') {
                    toks.push(Tok::Op(if fd2 { "2>>" } else { ">>" }));
                    i += 2;
                } else {
                    toks.push(Tok::Op(if fd2 { "2>" } else { ">" }));
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                let end = chars[i + 1..].iter().position(|c| *c == '\'');
                match end {
                    Some(e) => {
                        word.extend(&chars[i + 1..i + 1 + e]);
                        i += e + 2;
                    }
                    None => return Err("unterminated quoted string".into()),
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => expand(&chars, &mut i, &mut word),
                        Some(ch) => {
                            word.push(*ch);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.get(i + 1) {
                    if *n != '\n' {
                        word.push(*n);
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            '$' => {
                in_word = true;
                expand(&chars, &mut i, &mut word);
            }
            '`' => return Err("command substitution is not supported".into()),
            _ => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    flush!();
    Ok(toks)
}

/// A simple command with its redirections.
#[derive(Debug, Default)]
struct Simple {
    words: Vec<String>,
    stdout_file: Option<(String, bool)>,
    stderr_file: Option<(String, bool)>,
    stderr_to_stdout: bool,
    stdin_file: Option<String>,
}

fn parse_simple(toks: &[Tok]) -> Result<Simple, String> {
    let mut s = Simple::default();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Word(w) => s.words.push(w.clone()),
            Tok::Op(op) => {
                let target = match toks.get(i + 1) {
                    Some(Tok::Word(w)) => Some(w.clone()),
                    _ => None,
                };
                match *op {
                    "2>&1" => {
                        s.stderr_to_stdout = true;
                        i += 1;
                        continue;
                    }
                    ">" | ">>" | "2>" | "2>>" | "<" => {
                        let t = target
                            .ok_or_else(|| format!("syntax error near unexpected token `{op}'"))?;
                        match *op {
                            ">" => s.stdout_file = Some((t, false)),
                            ">>" => s.stdout_file = Some((t, true)),
                            "2>" => s.stderr_file = Some((t, false)),
                            "2>>" => s.stderr_file = Some((t, true)),
                            _ => s.stdin_file = Some(t),
                        }
                        i += 2;
                        continue;
                    }
                    other => return Err(format!("syntax error near unexpected token `{other}'")),
                }
            }
        }
        i += 1;
    }
    Ok(s)
}

/// Run a shell script; returns the status of the last command.
pub fn run_script<'a>(ctx: &'a mut Ctx, script: &'a str, io: Io) -> BoxFut<'a> {
    Box::pin(async move {
        let mut io = io;
        let toks = match tokenize(ctx, script) {
            Ok(t) => t,
            Err(e) => {
                io.stderr.print(format!("sh: {e}\n")).await;
                return 2;
            }
        };
        // Split into list items: (connector-before, tokens, background).
        let mut items: Vec<(&'static str, Vec<Tok>, bool)> = Vec::new();
        let mut cur = Vec::new();
        let mut conn: &'static str = ";";
        for t in toks {
            match t {
                Tok::Op(op @ (";" | "&&" | "||" | "&")) => {
                    if cur.is_empty() {
                        if op == ";" {
                            continue;
                        }
                        io.stderr
                            .print(format!("sh: syntax error near unexpected token `{op}'\n"))
                            .await;
                        return 2;
                    }
                    items.push((conn, std::mem::take(&mut cur), op == "&"));
                    conn = if op == "&" { ";" } else { op };
                }
                other => cur.push(other),
            }
        }
        if !cur.is_empty() {
            items.push((conn, cur, false));
        } else if conn != ";" {
            io.stderr
                .print("sh: syntax error: unexpected end of file\n")
                .await;
            return 2;
        }
        let mut status = ctx.last_status;
        for (conn, toks, background) in items {
            if ctx.killed() {
                return 143;
            }
            match conn {
                "&&" if status != 0 => continue,
                "||" if status == 0 => continue,
                _ => {}
            }
            status = if background {
                spawn_background(ctx, toks);
                0
            } else {
                run_pipeline(ctx, toks, &mut io).await
            };
            ctx.last_status = status;
            if let Some(code) = ctx.exit_requested {
                return code;
            }
        }
        status
    })
}

fn spawn_background(ctx: &mut Ctx, toks: Vec<Tok>) {
    let cmdline = toks
        .iter()
        .map(|t| match t {
            Tok::Word(w) => quote_word(w),
            Tok::Op(o) => o.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let container = Arc::clone(&ctx.container);
    let (pid, kill) = container.start_process(cmdline);
    let mut child = Ctx {
        container: Arc::clone(&container),
        pid,
        env: ctx.env.clone(),
        cwd: ctx.cwd.clone(),
        kill,
        last_status: 0,
        exit_requested: None,
    };
    ctx.setenv("!", &pid.to_string());
    tokio::spawn(async move {
        let mut io = Io {
            stdin: Stdin::null(),
            stdout: Sink::Null,
            stderr: Sink::Null,
        };
        let _ = run_pipeline(&mut child, toks, &mut io).await;
        container.end_process(pid);
    });
}

async fn run_pipeline(ctx: &mut Ctx, toks: Vec<Tok>, io: &mut Io) -> i32 {
    let stages: Vec<Vec<Tok>> = toks
        .split(|t| *t == Tok::Op("|"))
        .map(<[Tok]>::to_vec)
        .collect();
    if stages.len() == 1 {
        let stdin = io.stdin.clone();
        let status = run_simple(ctx, &stages[0], stdin, io.stdout.clone(), io.stderr.clone()).await;
        return status;
    }
    // Buffered pipeline: each stage runs to completion, its output feeding the next.
    let mut input = io.stdin.clone();
    let mut status = 0;
    let last = stages.len() - 1;
    for (n, stage) in stages.iter().enumerate() {
        if n == last {
            status = run_simple(ctx, stage, input, io.stdout.clone(), io.stderr.clone()).await;
            break;
        }
        let (sink, buf) = Sink::buffer();
        status = run_simple(ctx, stage, input, sink, io.stderr.clone()).await;
        let data = std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()));
        input = Stdin::bytes(data);
    }
    status
}

async fn run_simple(ctx: &mut Ctx, toks: &[Tok], stdin: Stdin, stdout: Sink, stderr: Sink) -> i32 {
    let simple = match parse_simple(toks) {
        Ok(s) => s,
        Err(e) => {
            stderr.print(format!("sh: {e}\n")).await;
            return 2;
        }
    };
    // Leading NAME=value assignments.
    let mut words = simple.words.clone();
    let mut assigns = Vec::new();
    while let Some(w) = words.first() {
        match w.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                assigns.push((k.to_string(), v.to_string()));
                words.remove(0);
            }
            _ => break,
        }
    }
    if words.is_empty() {
        for (k, v) in assigns {
            ctx.setenv(&k, &v);
        }
        return 0;
    }
    // Shell built-ins that change the shell itself.
    match words[0].as_str() {
        "cd" => {
            let target = words.get(1).cloned().unwrap_or_else(|| "/root".into());
            let abs = ctx.path(&target);
            if ctx.container.fs().is_dir(&abs) {
                ctx.cwd = abs;
                return 0;
            }
            stderr
                .print(format!("sh: cd: {target}: No such file or directory\n"))
                .await;
            return 2;
        }
        "export" => {
            for w in &words[1..] {
                if let Some((k, v)) = w.split_once('=') {
                    ctx.setenv(k, v);
                }
            }
            return 0;
        }
        "exit" => {
            let code = words
                .get(1)
                .and_then(|c| c.parse::<i32>().ok())
                .unwrap_or(ctx.last_status);
            ctx.exit_requested = Some(code);
            return code;
        }
        _ => {}
    }
    let mut stdin = stdin;
    if let Some(f) = &simple.stdin_file {
        let read = ctx.container.fs().read(&ctx.path(f));
        match read {
            Ok(d) => stdin = Stdin::bytes(d.to_vec()),
            Err(e) => {
                stderr.print(format!("sh: {f}: {e}\n")).await;
                return 1;
            }
        }
    }
    let (out_sink, out_buf) = match &simple.stdout_file {
        Some((f, _)) if f == "/dev/null" => (Sink::Null, None),
        Some(_) => {
            let (s, b) = Sink::buffer();
            (s, Some(b))
        }
        None => (stdout.clone(), None),
    };
    let (err_sink, err_buf) = if simple.stderr_to_stdout {
        (out_sink.clone(), None)
    } else {
        match &simple.stderr_file {
            Some((f, _)) if f == "/dev/null" => (Sink::Null, None),
            Some(_) => {
                let (s, b) = Sink::buffer();
                (s, Some(b))
            }
            None => (stderr.clone(), None),
        }
    };
    let saved_env = ctx.env.clone();
    for (k, v) in &assigns {
        ctx.setenv(k, v);
    }
    let status = run(
        ctx,
        words,
        Io {
            stdin,
            stdout: out_sink,
            stderr: err_sink,
        },
    )
    .await;
    if !assigns.is_empty() {
        ctx.env = saved_env;
    }
    for (target, buf) in [
        (simple.stdout_file.as_ref(), out_buf),
        (simple.stderr_file.as_ref(), err_buf),
    ] {
        if let (Some((f, append)), Some(buf)) = (target, buf) {
            let data = std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()));
            let abs = ctx.path(f);
            let res = {
                let mut fs = ctx.container.fs();
                if *append {
                    fs.append(&abs, &data)
                } else {
                    fs.write(&abs, Bytes::from(data), None)
                }
            };
            if let Err(e) = res {
                stderr.print(format!("sh: {f}: {e}\n")).await;
                return 1;
            }
        }
    }
    status
}

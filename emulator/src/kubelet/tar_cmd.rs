//! The `tar` command of the simulated shell: create (`c`), extract (`x`) and list (`t`), to and
//! from stdin/stdout or a file, with `-C` — what `kubectl cp` runs (`tar cf - PATH`,
//! `tar -xmf - -C DIR`). Archives are read and written with the `tar` crate (GNU headers, GNU
//! long names; reading also understands ustar and PAX archives such as Go's `archive/tar`
//! writes).

use std::io::Read;

use ::tar::{Archive, Builder, EntryType, Header};
use bytes::Bytes;

use super::fs::{self, Entry};
use super::shell::{Ctx, Io};

/// GNU tar writes archives in records of 20 blocks of 512 bytes.
const RECORD: usize = 20 * 512;

/// Options of a `tar` invocation.
struct TarOpts {
    mode: Option<char>,
    file: Option<String>,
    dir: Option<String>,
    verbose: bool,
    paths: Vec<String>,
    gzip: bool,
}

fn parse_tar_args(args: &[String]) -> Result<TarOpts, String> {
    let mut o = TarOpts {
        mode: None,
        file: None,
        dir: None,
        verbose: false,
        paths: Vec::new(),
        gzip: false,
    };
    let mut i = 0;
    let mut first = true;
    // Letters that take an argument, consumed from the following words in order.
    let mut pending: Vec<char> = Vec::new();
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if let Some(c) = pending.first().copied() {
            pending.remove(0);
            match c {
                'f' => o.file = Some(a.clone()),
                _ => o.dir = Some(a.clone()),
            }
            continue;
        }
        let letters: Option<&str> = if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some(("file", v)) => o.file = Some(v.to_string()),
                Some(("directory", v)) => o.dir = Some(v.to_string()),
                _ => match long {
                    "create" => o.mode = Some('c'),
                    "extract" | "get" => o.mode = Some('x'),
                    "list" => o.mode = Some('t'),
                    "file" => pending.push('f'),
                    "directory" => pending.push('C'),
                    "verbose" => o.verbose = true,
                    "gzip" => o.gzip = true,
                    _ => {} // --no-same-owner, --no-same-permissions, --touch, ...
                },
            }
            None
        } else if let Some(l) = a.strip_prefix('-').filter(|l| !l.is_empty()) {
            Some(l)
        } else if first {
            Some(a.as_str())
        } else {
            o.paths.push(a.clone());
            None
        };
        first = false;
        if let Some(l) = letters {
            for c in l.chars() {
                match c {
                    'c' | 'x' | 't' => o.mode = Some(c),
                    'f' | 'C' => pending.push(c),
                    'v' => o.verbose = true,
                    'z' => o.gzip = true,
                    'm' | 'o' | 'p' | 'h' | 'P' => {}
                    other => return Err(format!("tar: unknown option -- '{other}'")),
                }
            }
        }
    }
    Ok(o)
}

impl TarOpts {
    /// Whether the archive goes to stdout (or comes from stdin).
    fn to_std(&self) -> bool {
        self.file.as_deref().is_none_or(|f| f == "-")
    }
}

/// Why an archive could not be read (GNU tar's messages).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum TarError {
    /// The input is not a tar archive (bad checksum).
    #[error("This does not look like a tar archive")]
    NotTar,
    /// The archive ends in the middle of a member.
    #[error("Unexpected EOF in archive")]
    Truncated,
}

/// What extraction needs of an archive member.
struct Member {
    name: String,
    kind: EntryType,
    mode: u32,
    data: Vec<u8>,
    link: String,
}

/// `tar`.
pub(super) async fn tar_cmd(ctx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let o = match parse_tar_args(args) {
        Ok(o) => o,
        Err(e) => {
            io.stderr
                .print(format!("{e}\nTry 'tar --help' for more information.\n"))
                .await;
            return 2;
        }
    };
    if o.gzip {
        io.stderr
            .print("tar: gzip (-z) is not available in this simulated container\n")
            .await;
        return 2;
    }
    let base = match &o.dir {
        Some(d) => {
            let abs = ctx.path(d);
            if !ctx.container.fs().is_dir(&abs) {
                io.stderr
                    .print(format!(
                        "tar: {d}: Cannot open: No such file or directory\ntar: Error is not recoverable: exiting now\n"
                    ))
                    .await;
                return 2;
            }
            abs
        }
        None => ctx.cwd.clone(),
    };
    match o.mode {
        Some('c') => create(ctx, &o, &base, io).await,
        Some(m @ ('x' | 't')) => extract(ctx, &o, &base, m == 't', io).await,
        _ => {
            io.stderr
                .print("tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\nTry 'tar --help' for more information.\n")
                .await;
            2
        }
    }
}

/// `tar c`: archives the paths (directories recursively), relative to `base`.
async fn create(ctx: &mut Ctx, o: &TarOpts, base: &str, io: &mut Io) -> i32 {
    if o.paths.is_empty() {
        io.stderr
            .print("tar: Cowardly refusing to create an empty archive\n")
            .await;
        return 2;
    }
    let mut b = Builder::new(Vec::new());
    let mut names = String::new();
    let mut status = 0;
    let mut warned = false;
    for p in &o.paths {
        let mut display = p.trim_end_matches('/').to_string();
        if display.starts_with('/') {
            if !warned {
                io.stderr
                    .print("tar: Removing leading `/' from member names\n")
                    .await;
                warned = true;
            }
            display = display.trim_start_matches('/').to_string();
        }
        let added = append_tree(ctx, &mut b, &fs::normalize(base, p), &display, &mut names);
        let err = match added {
            Ok(true) => continue,
            Ok(false) => format!("tar: {p}: Cannot stat: No such file or directory\n"),
            Err(e) => format!("tar: {p}: Cannot add: {e}\n"),
        };
        io.stderr.print(err).await;
        status = 2;
    }
    if o.verbose {
        let sink = if o.to_std() { &io.stderr } else { &io.stdout };
        sink.print(names).await;
    }
    let archive = finish(b);
    if o.to_std() {
        io.stdout.write(archive).await;
    } else if let Some(f) = &o.file {
        let abs = ctx.path(f);
        let res = ctx.container.fs().write(&abs, Bytes::from(archive), None);
        if let Err(e) = res {
            io.stderr
                .print(format!("tar: {f}: Cannot open: {e}\n"))
                .await;
            return 2;
        }
    }
    if status != 0 {
        io.stderr
            .print("tar: Exiting with failure status due to previous errors\n")
            .await;
    }
    status
}

/// Appends the entry at `abs` (and everything under it) as `display`; false when there is no
/// such entry. Each member's name is added to `names`.
fn append_tree(
    ctx: &Ctx,
    b: &mut Builder<Vec<u8>>,
    abs: &str,
    display: &str,
    names: &mut String,
) -> std::io::Result<bool> {
    let fs = ctx.container.fs();
    let Some(e) = fs.get(abs) else {
        return Ok(false);
    };
    append_entry(b, display, e, names)?;
    if e.is_dir() {
        for (path, child) in fs.walk(abs) {
            let rel = path[abs.len()..].trim_start_matches('/');
            let name = if display.is_empty() {
                rel.to_string()
            } else {
                format!("{display}/{rel}")
            };
            append_entry(b, &name, &child, names)?;
        }
    }
    Ok(true)
}

/// One member, owned by root (directories named with a trailing `/`, as GNU tar does).
fn append_entry(
    b: &mut Builder<Vec<u8>>,
    name: &str,
    e: &Entry,
    names: &mut String,
) -> std::io::Result<()> {
    let mut h = Header::new_gnu();
    h.set_mode(e.mode() & 0o7777);
    h.set_mtime(u64::try_from(e.mtime().timestamp()).unwrap_or(0));
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    match e {
        Entry::File { data, .. } => {
            h.set_entry_type(EntryType::Regular);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, &data[..])?;
        }
        Entry::Dir { .. } => {
            h.set_entry_type(EntryType::Directory);
            h.set_size(0);
            let path = format!("{}/", if name.is_empty() { "." } else { name });
            b.append_data(&mut h, path, std::io::empty())?;
        }
    }
    names.push_str(name);
    names.push('\n');
    Ok(())
}

/// The archive with its end-of-archive blocks, padded to a whole record.
fn finish(b: Builder<Vec<u8>>) -> Vec<u8> {
    // Writing to a Vec cannot fail.
    let mut out = b.into_inner().unwrap_or_default();
    out.resize(out.len().div_ceil(RECORD).max(1) * RECORD, 0);
    out
}

/// `tar x` (or `tar t` when `list_only`): extracts (lists) the archive from stdin or a file.
async fn extract(ctx: &mut Ctx, o: &TarOpts, base: &str, list_only: bool, io: &mut Io) -> i32 {
    let data = if o.to_std() {
        io.stdin.read_all().await
    } else {
        let f = o.file.clone().unwrap_or_default();
        let read = ctx.container.fs().read(&ctx.path(&f));
        match read {
            Ok(d) => d.to_vec(),
            Err(e) => {
                io.stderr
                    .print(format!(
                        "tar: {f}: Cannot open: {e}\ntar: Error is not recoverable: exiting now\n"
                    ))
                    .await;
                return 2;
            }
        }
    };
    let members = match read_members(&data) {
        Ok(m) => m,
        Err(e) => {
            io.stderr
                .print(format!(
                    "tar: {e}\ntar: Exiting with failure status due to previous errors\n"
                ))
                .await;
            return 2;
        }
    };
    if list_only {
        let names: String = members.iter().map(|m| format!("{}\n", m.name)).collect();
        io.stdout.print(names).await;
        return 0;
    }
    let mut status = 0;
    let mut listing = String::new();
    for mem in members {
        let err = if mem.name.split('/').any(|p| p == "..") {
            format!("tar: {}: Member name contains '..'\n", mem.name)
        } else {
            listing.push_str(&format!("{}\n", mem.name));
            match write_member(ctx, base, &mem) {
                Ok(()) => continue,
                Err(e) => format!("tar: {}: Cannot open: {e}\n", mem.name),
            }
        };
        io.stderr.print(err).await;
        status = 2;
    }
    if o.verbose {
        io.stdout.print(listing).await;
    }
    status
}

/// Writes one member under `base`.
fn write_member(ctx: &Ctx, base: &str, mem: &Member) -> Result<(), fs::FsError> {
    let path = fs::normalize(base, mem.name.trim_start_matches('/'));
    let mut fs = ctx.container.fs();
    match mem.kind {
        EntryType::Directory => fs.mkdir_all(&path, mem.mode),
        EntryType::Regular | EntryType::Continuous => {
            fs.write_all(&path, Bytes::from(mem.data.clone()), Some(mem.mode))
        }
        EntryType::Symlink => {
            // Materialise the link as a copy of its target when it exists.
            let target = fs::normalize(fs::parent(&path), &mem.link);
            match fs.read(&target) {
                Ok(d) => fs.write_all(&path, d, Some(0o777)),
                Err(_) => Ok(()),
            }
        }
        // Hard links, devices, FIFOs are skipped.
        _ => Ok(()),
    }
}

/// A reading error as GNU tar reports it: the input ends too early, or it is no archive at
/// all (bad header checksum or fields).
fn classify(e: &std::io::Error) -> TarError {
    let msg = e.to_string();
    if e.kind() == std::io::ErrorKind::UnexpectedEof
        || msg.contains("entire block")
        || msg.contains("EOF")
    {
        TarError::Truncated
    } else {
        TarError::NotTar
    }
}

/// Every member of an archive (GNU long names and PAX headers resolved; PAX global headers
/// skipped). An empty input is an empty archive, as GNU tar accepts it.
fn read_members(data: &[u8]) -> Result<Vec<Member>, TarError> {
    let mut archive = Archive::new(data);
    let entries = archive.entries().map_err(|_| TarError::NotTar)?;
    let mut out = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| classify(&e))?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let mode = entry.header().mode().unwrap_or(0o644);
        let mut body = Vec::new();
        if matches!(kind, EntryType::Regular | EntryType::Continuous) {
            entry
                .read_to_end(&mut body)
                .map_err(|_| TarError::Truncated)?;
            if body.len() as u64 != entry.size() {
                return Err(TarError::Truncated);
            }
        }
        out.push(Member {
            name,
            kind,
            mode,
            data: body,
            link,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(&str, Entry)]) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        let mut names = String::new();
        for (n, e) in members {
            append_entry(&mut b, n, e, &mut names).unwrap();
        }
        finish(b)
    }

    /// Directories get a trailing `/`, long names round-trip (GNU long name), archives are
    /// whole records.
    #[test]
    fn round_trip_with_long_names() {
        let long = format!("dir/{}", "x".repeat(150));
        let now = chrono::Utc::now();
        let file = |data: &[u8], mode| Entry::File {
            data: Bytes::copy_from_slice(data),
            mode,
            mtime: now,
        };
        let bytes = archive(&[
            (
                "dir",
                Entry::Dir {
                    mode: 0o755,
                    mtime: now,
                },
            ),
            ("dir/a.txt", file(b"hello\n", 0o600)),
            (&long, file(&[7u8; 1000], 0o644)),
        ]);
        assert_eq!(bytes.len() % RECORD, 0);
        let back = read_members(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(
            (back[0].name.as_str(), back[0].kind),
            ("dir/", EntryType::Directory)
        );
        assert_eq!(back[1].name, "dir/a.txt");
        assert_eq!(back[1].mode, 0o600);
        assert_eq!(back[1].data, b"hello\n");
        assert_eq!(back[2].name, long);
        assert_eq!(back[2].data.len(), 1000);
    }

    /// Garbage is not a tar archive; a cut-off archive is truncated; nothing is an empty one.
    #[test]
    fn bad_archives() {
        assert_eq!(read_members(&[1u8; 1024]).err(), Some(TarError::NotTar));
        let now = chrono::Utc::now();
        let bytes = archive(&[(
            "a",
            Entry::File {
                data: Bytes::from(vec![1u8; 2000]),
                mode: 0o644,
                mtime: now,
            },
        )]);
        assert_eq!(
            read_members(&bytes[..1024]).err(),
            Some(TarError::Truncated)
        );
        assert_eq!(read_members(&bytes[..300]).err(), Some(TarError::Truncated));
        assert!(read_members(&[]).unwrap().is_empty());
    }
}

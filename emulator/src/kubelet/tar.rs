//! Just enough of the tar format for `kubectl cp` and the SDK: writing ustar archives (GNU long
//! names for paths over 100 bytes) and reading ustar, GNU (`L` long names) and PAX (`x` headers
//! with `path`/`size`) archives such as Go's `archive/tar` writes.

use chrono::{DateTime, Utc};

const BLOCK: usize = 512;

/// Kind of an archive member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (target in `link`).
    Symlink,
    /// Anything else (hard links, devices, FIFOs); skipped on extraction.
    Other,
}

/// One member of an archive.
#[derive(Debug, Clone)]
pub struct Member {
    /// Path inside the archive (no leading `/` when written by us).
    pub name: String,
    /// Kind of member.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: DateTime<Utc>,
    /// Content (empty for directories).
    pub data: Vec<u8>,
    /// Link target of a symlink.
    pub link: String,
}

/// Errors while reading an archive.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TarError {
    /// The input is not a tar archive (bad checksum or truncated header).
    #[error("This does not look like a tar archive")]
    NotTar,
    /// The archive ends in the middle of a member.
    #[error("Unexpected EOF in archive")]
    Truncated,
}

fn octal(field: &mut [u8], value: u64) {
    // width-1 digits followed by NUL, zero padded.
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    let bytes = s.as_bytes();
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

fn header(name: &[u8], kind: u8, mode: u32, size: u64, mtime: i64, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.max(0) as u64);
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar ");
    h[263..265].copy_from_slice(b" \0");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    // checksum: computed with the checksum field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// Write an archive of `members` (GNU format, as GNU tar's default).
pub fn write(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut name = m.name.clone();
        if m.kind == Kind::Dir && !name.ends_with('/') {
            name.push('/');
        }
        let kind = match m.kind {
            Kind::File | Kind::Other => b'0',
            Kind::Dir => b'5',
            Kind::Symlink => b'2',
        };
        if name.len() > 100 {
            let mut long = name.as_bytes().to_vec();
            long.push(0);
            out.extend_from_slice(&header(
                b"././@LongLink",
                b'L',
                0o644,
                long.len() as u64,
                0,
                b"",
            ));
            out.extend_from_slice(&long);
            pad(&mut out);
        }
        let size = if m.kind == Kind::File {
            m.data.len() as u64
        } else {
            0
        };
        out.extend_from_slice(&header(
            name.as_bytes(),
            kind,
            m.mode,
            size,
            m.mtime.timestamp(),
            m.link.as_bytes(),
        ));
        if m.kind == Kind::File {
            out.extend_from_slice(&m.data);
            pad(&mut out);
        }
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    // GNU tar pads to a 10240-byte record.
    let rem = out.len() % 10240;
    if rem != 0 {
        out.resize(out.len() + 10240 - rem, 0);
    }
    out
}

fn parse_octal(field: &[u8]) -> u64 {
    // Base-256 (binary) encoding for large values.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = (v << 8) | u64::from(*b);
        }
        return v;
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    u64::from_str_radix(s.trim(), 8).unwrap_or(0)
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    // "<len> key=value\n" records.
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Ok(len) = std::str::from_utf8(&rest[..sp])
            .unwrap_or("")
            .parse::<usize>()
        else {
            break;
        };
        if len == 0 || len > rest.len() || len <= sp + 1 {
            break;
        }
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            ));
        }
        rest = &rest[len..];
    }
    out
}

/// Read every member of an archive.
pub fn read(data: &[u8]) -> Result<Vec<Member>, TarError> {
    let mut members = Vec::new();
    let mut pos = 0;
    let mut long_name: Option<String> = None;
    let mut pax: Vec<(String, String)> = Vec::new();
    loop {
        if pos + BLOCK > data.len() {
            if pos >= data.len() {
                // An archive without the end-of-archive blocks: accept, as GNU tar does
                // with a warning.
                return Ok(members);
            }
            return Err(TarError::Truncated);
        }
        let h = &data[pos..pos + BLOCK];
        if h.iter().all(|b| *b == 0) {
            return Ok(members);
        }
        let stored = parse_octal(&h[148..156]);
        let computed: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    u64::from(b' ')
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if stored != computed {
            return Err(TarError::NotTar);
        }
        let mut size = parse_octal(&h[124..136]) as usize;
        if let Some((_, v)) = pax.iter().find(|(k, _)| k == "size") {
            size = v.parse().unwrap_or(size);
        }
        let kind_byte = h[156];
        let body_start = pos + BLOCK;
        let body_len = if matches!(kind_byte, b'5' | b'2' | b'1') {
            0
        } else {
            size
        };
        if body_start + body_len > data.len() {
            return Err(TarError::Truncated);
        }
        let body = &data[body_start..body_start + body_len];
        pos = body_start + body_len.div_ceil(BLOCK) * BLOCK;
        match kind_byte {
            b'L' => {
                long_name = Some(cstr(body));
                continue;
            }
            b'x' => {
                pax = pax_records(body);
                continue;
            }
            b'g' | b'K' => continue,
            _ => {}
        }
        let mut name = cstr(&h[0..100]);
        let magic = &h[257..263];
        if magic == b"ustar\0" {
            let prefix = cstr(&h[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        if let Some(n) = long_name.take() {
            name = n;
        }
        if let Some((_, v)) = pax.iter().find(|(k, _)| k == "path") {
            name = v.clone();
        }
        let link = pax
            .iter()
            .find(|(k, _)| k == "linkpath")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| cstr(&h[157..257]));
        pax.clear();
        let kind = match kind_byte {
            b'0' | 0 | b'7' => Kind::File,
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink,
            _ => Kind::Other,
        };
        let mtime = DateTime::<Utc>::from_timestamp(parse_octal(&h[136..148]) as i64, 0)
            .unwrap_or_else(Utc::now);
        members.push(Member {
            name,
            kind,
            mode: parse_octal(&h[100..108]) as u32,
            mtime,
            data: if kind == Kind::File {
                body.to_vec()
            } else {
                Vec::new()
            },
            link,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_long_names() {
        let long = format!("dir/{}", "x".repeat(150));
        let members = vec![
            Member {
                name: "dir".into(),
                kind: Kind::Dir,
                mode: 0o755,
                mtime: Utc::now(),
                data: vec![],
                link: String::new(),
            },
            Member {
                name: "dir/a.txt".into(),
                kind: Kind::File,
                mode: 0o600,
                mtime: Utc::now(),
                data: b"hello\n".to_vec(),
                link: String::new(),
            },
            Member {
                name: long.clone(),
                kind: Kind::File,
                mode: 0o644,
                mtime: Utc::now(),
                data: vec![7u8; 1000],
                link: String::new(),
            },
        ];
        let bytes = write(&members);
        assert_eq!(bytes.len() % 10240, 0);
        let back = read(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].name, "dir/");
        assert_eq!(back[0].kind, Kind::Dir);
        assert_eq!(back[1].name, "dir/a.txt");
        assert_eq!(back[1].mode, 0o600);
        assert_eq!(back[1].data, b"hello\n");
        assert_eq!(back[2].name, long);
        assert_eq!(back[2].data.len(), 1000);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(read(&[1u8; 1024]).unwrap_err(), TarError::NotTar);
    }

    #[test]
    fn pax_path_wins() {
        let recs = pax_records(b"20 path=a/b/c/d.txt\n10 size=3\n");
        assert_eq!(recs[0], ("path".into(), "a/b/c/d.txt".into()));
        assert_eq!(recs[1], ("size".into(), "3".into()));
    }
}

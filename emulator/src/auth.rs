//! Authentication as the emulator does it: static bearer tokens (kube-apiserver's
//! `--token-auth-file`) and the anonymous user, consulted only by `TokenReview`.
//!
//! The emulator authenticates no request of its own (every client is served whatever it sends)
//! and authorizes every request (no RBAC authorizer, as `--authorization-mode=AlwaysAllow`);
//! impersonation headers are recorded in the request log but not enforced. A `TokenReview`
//! (`POST /apis/authentication.k8s.io/v1/tokenreviews`) answers as kube-apiserver v1.37 does with
//! a token file, anonymous authentication on (its default) and the API audience
//! [`API_AUDIENCE`]:
//!
//! - a known token: `authenticated: true`, the token's user with `system:authenticated` appended
//!   to its groups (unless they hold it or `system:unauthenticated` already, or the user is
//!   `system:anonymous`), and `audiences: [API_AUDIENCE]`; with `spec.audiences` the token is
//!   accepted only when they include [`API_AUDIENCE`] (a token file is audience agnostic), and
//!   `status.audiences` is then that intersection;
//! - an unknown token: `authenticated` absent (false), `user: {}`, `error: "invalid bearer token"`;
//! - the token is what the bearer token authenticator reads from `Authorization: Bearer <token>`:
//!   surrounding white space is trimmed and it ends at the first space (`t1 more` is `t1`);
//! - a token that leaves an empty bearer token in `Authorization: Bearer <token>` (one that starts
//!   with a space, or is only white space): the anonymous user (`system:anonymous`, groups
//!   `[system:unauthenticated]`), authenticated, with the review's audiences;
//! - an empty or missing `spec.token`: 400 BadRequest `token is required for TokenReview in
//!   authentication`.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::error::EmulatorError;

/// The API server's audience (kube-apiserver's `--api-audiences`, which defaults to its
/// `--service-account-issuer`): the one of kubeadm clusters and of `hack/cluster.sh`.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// The group every authenticated user is given.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";

/// The group of the anonymous user.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";

/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";

/// What an unknown bearer token gets (kube-apiserver's bearer token authenticator).
pub const INVALID_BEARER_TOKEN: &str = "invalid bearer token";

/// One line of a static token file: a bearer token and the user it authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticToken {
    /// The bearer token.
    pub token: String,
    /// The user name.
    pub user: String,
    /// The user's uid ("" for none).
    pub uid: String,
    /// The user's groups (`system:authenticated` is added when a review authenticates it).
    pub groups: Vec<String>,
}

impl StaticToken {
    /// A token for `user` with no uid and no groups.
    pub fn new(token: impl Into<String>, user: impl Into<String>) -> StaticToken {
        StaticToken {
            token: token.into(),
            user: user.into(),
            ..StaticToken::default()
        }
    }

    /// Reads a token file in kube-apiserver's `--token-auth-file` format: CSV records
    /// `token,user,uid` with an optional fourth column of comma-separated groups
    /// (`token,user,uid,"group1,group2"`); further columns are ignored. Fields are RFC 4180 CSV
    /// as Go's `encoding/csv` reads them (quotes around a field, `""` for a quote inside one, no
    /// trimming of spaces). As kube-apiserver does, a record with an empty token is skipped, a
    /// later record of the same token replaces an earlier one when loaded, and the groups column
    /// is split on commas as it is (an empty one gives the group `""`). Unlike kube-apiserver,
    /// blank lines (only white space) and lines starting with `#` are ignored.
    ///
    /// Errors name the line: fewer than 3 columns, a bare `"` in an unquoted field, or text
    /// after a quoted field's closing quote, or a quote never closed.
    pub fn parse_file(text: &str) -> Result<Vec<StaticToken>, EmulatorError> {
        let mut out = Vec::new();
        for (line, record) in csv_records(text)? {
            if record.len() < 3 {
                return Err(EmulatorError::TokenFile {
                    line,
                    message: format!(
                        "must have at least 3 columns (token, user name, user uid), found {}",
                        record.len()
                    ),
                });
            }
            let mut fields = record.into_iter();
            let token = fields.next().unwrap_or_default();
            let user = fields.next().unwrap_or_default();
            let uid = fields.next().unwrap_or_default();
            let groups = fields
                .next()
                .map(|g| g.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            if token.is_empty() {
                continue;
            }
            out.push(StaticToken {
                token,
                user,
                uid,
                groups,
            });
        }
        Ok(out)
    }
}

fn csv_error(line: usize, message: &str) -> EmulatorError {
    EmulatorError::TokenFile {
        line,
        message: message.to_string(),
    }
}

/// The records of a CSV text with the (1-based) line each starts on; blank lines and lines
/// starting with `#` are skipped. `\r\n` reads as `\n`, as in Go's `encoding/csv`.
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, EmulatorError> {
    const QUOTE_ERROR: &str = "extraneous or missing \" in quoted-field";
    let text = text.replace("\r\n", "\n");
    let mut records = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        // The start of a record: skip a blank or comment line whole.
        let rest: String = chars.clone().take_while(|c| *c != '\n').collect();
        if rest.trim().is_empty() || rest.starts_with('#') {
            chars.by_ref().take_while(|c| *c != '\n').for_each(drop);
            line += 1;
            continue;
        }
        let start = line;
        let mut record = Vec::new();
        loop {
            let mut field = String::new();
            if chars.next_if_eq(&'"').is_some() {
                loop {
                    match chars.next() {
                        None => return Err(csv_error(start, QUOTE_ERROR)),
                        Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                if !matches!(chars.peek(), None | Some(',') | Some('\n')) {
                    return Err(csv_error(line, QUOTE_ERROR));
                }
            } else {
                while let Some(c) = chars.next_if(|c| *c != ',' && *c != '\n') {
                    if c == '"' {
                        return Err(csv_error(line, "bare \" in non-quoted-field"));
                    }
                    field.push(c);
                }
            }
            record.push(field);
            match chars.next() {
                Some(',') => {}
                Some('\n') => {
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        records.push((start, record));
    }
    Ok(records)
}

/// The user a review authenticated (a TokenReview's `status.user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `username`.
    pub username: String,
    /// `uid` ("" is left out).
    pub uid: String,
    /// `groups`.
    pub groups: Vec<String>,
}

/// The outcome of a token review, as kube-apiserver fills a TokenReview's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// `status.authenticated`.
    pub authenticated: bool,
    /// `status.user` and `status.audiences`, set when a user was authenticated.
    pub user: Option<(UserInfo, Vec<String>)>,
    /// `status.error`, set when authentication failed with an error.
    pub error: Option<String>,
}

/// The static tokens the emulator knows (those of `EmulatorConfig::tokens` and
/// `Emulator::add_token`).
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: RwLock<HashMap<String, StaticToken>>,
}

impl Tokens {
    /// Adds a token (replacing a known one, as a later line of a token file does); an empty
    /// token is ignored, as kube-apiserver skips it.
    pub fn add(&self, t: StaticToken) {
        if t.token.is_empty() {
            return;
        }
        self.by_token
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.token.clone(), t);
    }

    fn get(&self, token: &str) -> Option<StaticToken> {
        self.by_token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// Reviews `token` for `audiences` (`spec.audiences`; empty = the API server's), as
    /// kube-apiserver's authenticator chain does for `Authorization: Bearer <token>`: the
    /// bearer token authenticator, the token file (audience agnostic), the group adder and the
    /// anonymous authenticator. `token` is not empty (the caller answered 400 for that).
    pub fn review(&self, token: &str, audiences: &[String]) -> Review {
        let auds: Vec<String> = if audiences.is_empty() {
            vec![API_AUDIENCE.to_string()]
        } else {
            audiences.to_vec()
        };
        let header = format!("Bearer {token}");
        let header = header.trim();
        let mut parts = header.splitn(3, ' ');
        let bearer = parts.nth(1).unwrap_or_default();
        if bearer.is_empty() {
            // No bearer token: the request is anonymous.
            return Review {
                authenticated: true,
                user: Some((
                    UserInfo {
                        username: ANONYMOUS.into(),
                        uid: String::new(),
                        groups: vec![ALL_UNAUTHENTICATED.into()],
                    },
                    auds,
                )),
                error: None,
            };
        }
        // A token file accepts the API server's audience only.
        let accepted: Vec<String> = auds.into_iter().filter(|a| a == API_AUDIENCE).collect();
        match self.get(bearer) {
            Some(t) if !accepted.is_empty() => {
                let mut groups = t.groups.clone();
                let has_group = groups
                    .iter()
                    .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED);
                if t.user != ANONYMOUS && !has_group {
                    groups.push(ALL_AUTHENTICATED.into());
                }
                Review {
                    authenticated: true,
                    user: Some((
                        UserInfo {
                            username: t.user,
                            uid: t.uid,
                            groups,
                        },
                        accepted,
                    )),
                    error: None,
                }
            }
            _ => Review {
                authenticated: false,
                user: None,
                error: Some(INVALID_BEARER_TOKEN.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(token: &str, user: &str, uid: &str, groups: &[&str]) -> StaticToken {
        StaticToken {
            token: token.into(),
            user: user.into(),
            uid: uid.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The format of kube-apiserver's token file: 3 columns, an optional quoted groups column,
    /// further columns ignored; blank and comment lines skipped; CRLF line ends.
    #[test]
    fn parse_token_file() {
        let text = "# tokens of the tests\n\
                    t1,alice,uid-1,\"dev,ops\"\n\
                    \n\
                    t2,bob,uid-2\r\n\
                    \x20  \n\
                    t3,carol,,admins,extra\n\
                    \"t,4\",\"d \"\"q\"\"\",u4,\n";
        let got = StaticToken::parse_file(text).unwrap();
        assert_eq!(
            got,
            vec![
                tok("t1", "alice", "uid-1", &["dev", "ops"]),
                tok("t2", "bob", "uid-2", &[]),
                tok("t3", "carol", "", &["admins"]),
                tok("t,4", "d \"q\"", "u4", &[""]),
            ]
        );
        assert_eq!(StaticToken::parse_file("").unwrap(), vec![]);
        assert_eq!(
            StaticToken::parse_file("t,u,i").unwrap(),
            vec![tok("t", "u", "i", &[])]
        );
    }

    /// Spaces are kept (Go's encoding/csv trims nothing), a quoted field may span lines, and a
    /// record with an empty token is skipped.
    #[test]
    fn parse_token_file_edge_cases() {
        let got = StaticToken::parse_file(" t, u ,i,\"a,\nb\"\n,nobody,x\nnext,n,1").unwrap();
        assert_eq!(
            got,
            vec![
                tok(" t", " u ", "i", &["a", "\nb"]),
                tok("next", "n", "1", &[])
            ]
        );
    }

    /// Errors name the line of the record: too few columns, a bare quote, text after a closing
    /// quote, a quote never closed.
    #[test]
    fn parse_token_file_errors() {
        let msg = |t: &str| StaticToken::parse_file(t).unwrap_err().to_string();
        assert_eq!(
            msg("# c\nt1,a,1\nt2,b\n"),
            "token file, line 3: must have at least 3 columns (token, user name, user uid), found 2"
        );
        assert_eq!(
            msg("t1,a,1\nt\"2,b,2\n"),
            "token file, line 2: bare \" in non-quoted-field"
        );
        assert_eq!(
            msg("\"t1\"x,a,1\n"),
            "token file, line 1: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            msg("t0,a,0\n\"t1,a,1\n"),
            "token file, line 2: extraneous or missing \" in quoted-field"
        );
    }

    /// Known, unknown and anonymous tokens; audiences; the groups the adder leaves alone.
    #[test]
    fn review_tokens() {
        let tokens = Tokens::default();
        tokens.add(tok("t1", "alice", "u1", &["dev"]));
        tokens.add(tok("t2", "bob", "", &["system:authenticated", "x"]));
        tokens.add(tok("t3", ANONYMOUS, "", &[]));
        let aud = vec![API_AUDIENCE.to_string()];
        let r = tokens.review("t1", &[]);
        assert!(r.authenticated);
        assert_eq!(
            r.user,
            Some((
                UserInfo {
                    username: "alice".into(),
                    uid: "u1".into(),
                    groups: vec!["dev".into(), ALL_AUTHENTICATED.into()],
                },
                aud.clone()
            ))
        );
        // Surrounding white space is trimmed from the Authorization header, and the bearer
        // token ends at a space.
        assert!(tokens.review("t1  ", &[]).authenticated);
        assert!(tokens.review("t1 and more", &[]).authenticated);
        let r = tokens.review("t2", &[]);
        assert_eq!(r.user.unwrap().0.groups, vec!["system:authenticated", "x"]);
        assert_eq!(
            tokens.review("t3", &[]).user.unwrap().0.groups,
            Vec::<String>::new()
        );
        // Audiences: the token file accepts the API server's only.
        let r = tokens.review("t1", &["foo".to_string()]);
        assert!(!r.authenticated);
        assert_eq!(r.error.as_deref(), Some(INVALID_BEARER_TOKEN));
        let both = vec!["foo".to_string(), API_AUDIENCE.to_string()];
        assert_eq!(tokens.review("t1", &both).user.unwrap().1, aud);
        // Unknown, also when cut at its first space.
        for t in ["nope", "nope t1"] {
            let r = tokens.review(t, &[]);
            assert_eq!(
                r,
                Review {
                    authenticated: false,
                    user: None,
                    error: Some(INVALID_BEARER_TOKEN.into())
                }
            );
        }
        // An empty bearer token is anonymous, with the review's audiences.
        for t in [" t1", " ", "\t"] {
            let r = tokens.review(t, &["foo".to_string()]);
            assert!(r.authenticated, "{t:?}");
            let (u, a) = r.user.unwrap();
            assert_eq!(u.username, ANONYMOUS);
            assert_eq!(u.groups, vec![ALL_UNAUTHENTICATED]);
            assert_eq!(a, vec!["foo"]);
        }
        // A later token replaces an earlier one; an empty token is not added.
        tokens.add(tok("t1", "alice2", "", &[]));
        tokens.add(tok("", "nobody", "", &[]));
        assert_eq!(tokens.review("t1", &[]).user.unwrap().0.username, "alice2");
    }
}

//! What exec and attach mean on the wire, whatever the transport: the stream numbers, the
//! options of the request, the terminal size messages and the final status written on
//! the error stream, as upstream's `remotecommand` packages define them.

use serde::Deserialize;
use serde_json::{json, Value};

/// Stream numbers: the WebSocket channel of each stream, which by convention match the
/// POSIX descriptors.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Where the final status (v4+: a `Status` JSON; before: a text error) is written.
pub const ERROR: u8 = 3;
/// Terminal size changes, as [`TerminalSize`] JSON (v3+).
pub const RESIZE: u8 = 4;
/// v5's close signal: a message `[255, channel]` half-closes that channel (stdin).
pub const CLOSE: u8 = 255;

/// The protocol versions exec and attach negotiate, through `Sec-WebSocket-Protocol` or
/// SPDY's `X-Stream-Protocol-Version`. They differ in what the error stream carries and
/// whether resize exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// `channel.k8s.io`: errors as text, no resize.
    V1,
    /// `v2.channel.k8s.io`: as v1, and the error stream always exists.
    V2,
    /// `v3.channel.k8s.io`: adds the resize stream.
    V3,
    /// `v4.channel.k8s.io`: the error stream carries a `Status` JSON with the exit code.
    V4,
    /// `v5.channel.k8s.io` (WebSocket only): adds the close signal, so stdin can end.
    V5,
}

impl Version {
    /// The version a subprotocol name stands for (`base64` variants included).
    pub fn from_name(name: &str) -> Option<Version> {
        let name = name.trim();
        let name = name
            .strip_suffix("base64.channel.k8s.io")
            .map(|p| p.trim_end_matches('.'))
            .map(|p| if p.is_empty() { "channel.k8s.io" } else { p })
            .unwrap_or(name);
        Some(match name {
            "channel.k8s.io" | "" => Version::V1,
            "v2.channel.k8s.io" | "v2" => Version::V2,
            "v3.channel.k8s.io" | "v3" => Version::V3,
            "v4.channel.k8s.io" | "v4" => Version::V4,
            "v5.channel.k8s.io" | "v5" => Version::V5,
            _ => return None,
        })
    }

    /// Whether a terminal can be resized on this version.
    pub fn has_resize(self) -> bool {
        self >= Version::V3
    }

    /// Whether the error stream exists even when nothing failed (v1 only opens it on error).
    pub fn has_error_stream(self) -> bool {
        self >= Version::V2
    }
}

/// The SPDY versions the node serves, newest first: SPDY has no v5 (it has half-close).
pub const SPDY_VERSIONS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// Picks the version to speak from what the client offers (in its order of preference),
/// among `served`, as upstream's handshake does: the first offered that is served.
pub fn negotiate<'a>(
    offered: impl IntoIterator<Item = &'a str>,
    served: &[&'static str],
) -> Option<&'static str> {
    offered
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|o| served.iter().find(|s| **s == o).copied())
}

/// A terminal size change, as kubectl sends it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width", default)]
    pub width: u16,
    #[serde(rename = "Height", default)]
    pub height: u16,
}

/// Decodes the resize stream's bytes, which are concatenated JSON objects that may arrive
/// split anywhere: the complete ones are taken off `buf`, the rest waits for more. A stream
/// that is not JSON is an error (upstream closes the resize stream then).
pub fn decode_sizes(buf: &mut Vec<u8>) -> Result<Vec<TerminalSize>, serde_json::Error> {
    let mut sizes = Vec::new();
    let mut consumed = 0;
    {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
        loop {
            match it.next() {
                Some(Ok(size)) => {
                    sizes.push(size);
                    consumed = it.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e),
                None => {
                    consumed = it.byte_offset();
                    break;
                }
            }
        }
    }
    buf.drain(..consumed);
    Ok(sizes)
}

/// What the request asks for: the exec/attach query (`command` repeated, `container`,
/// `stdin`, `stdout`, `stderr`, `tty`), parsed as upstream's `ExecOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    /// From the query's pairs. Booleans are Go's `strconv.ParseBool` values.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Options {
        let mut o = Options::default();
        let truthy = |v: &str| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True");
        for (k, v) in pairs {
            match k {
                "command" => o.command.push(v.to_owned()),
                "container" => o.container = Some(v.to_owned()),
                "stdin" | "input" => o.stdin = truthy(v),
                "stdout" | "output" => o.stdout = truthy(v),
                "stderr" | "error" => o.stderr = truthy(v),
                "tty" => o.tty = truthy(v),
                _ => {}
            }
        }
        o
    }

    /// Upstream's checks before anything starts (`remotecommand.NewOptions`).
    pub fn validate(&self) -> Result<(), String> {
        if !self.stdin && !self.stdout && !self.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        if self.tty && self.stderr {
            // A terminal has one output: upstream drops stderr rather than fail.
            return Ok(());
        }
        Ok(())
    }

    /// Whether stderr is a separate stream (a terminal merges it into stdout).
    pub fn separate_stderr(&self) -> bool {
        self.stderr && !self.tty
    }
}

/// How an exec or attach ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited 0.
    Success,
    /// The command exited non-zero (`command` is the argv, for the message).
    ExitCode { code: i32, command: Vec<String> },
    /// It could not run: container missing or not running, runtime failure.
    Error(String),
}

/// The `Status` written on the error stream for v4 and v5, as upstream's
/// `v4WriteStatusFunc` encodes it (no kind or apiVersion).
pub fn status_json(outcome: &Outcome) -> Vec<u8> {
    let v: Value = match outcome {
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode { code, command } => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: command '{}' exited with {code}: ",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Error(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    serde_json::to_vec(&v).expect("Value serializes")
}

/// What the error stream carries for `outcome` at `version`: v4+ always a Status; before,
/// the error's text, nothing on success.
pub fn error_stream_bytes(version: Version, outcome: &Outcome) -> Option<Vec<u8>> {
    if version >= Version::V4 {
        return Some(status_json(outcome));
    }
    match outcome {
        Outcome::Success => None,
        Outcome::ExitCode { code, command } => Some(
            format!(
                "command terminated with non-zero exit code: command '{}' exited with {code}: ",
                command.join(" ")
            )
            .into_bytes(),
        ),
        Outcome::Error(m) => Some(m.clone().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_by_name() {
        let cases = [
            ("v5.channel.k8s.io", Some(Version::V5)),
            ("v4.channel.k8s.io", Some(Version::V4)),
            ("v4.base64.channel.k8s.io", Some(Version::V4)),
            ("base64.channel.k8s.io", Some(Version::V1)),
            ("channel.k8s.io", Some(Version::V1)),
            ("v2.channel.k8s.io", Some(Version::V2)),
            ("v6.channel.k8s.io", None),
            ("SPDY/3.1+portforward.k8s.io", None),
        ];
        for (name, want) in cases {
            assert_eq!(Version::from_name(name), want, "{name}");
        }
    }

    #[test]
    fn negotiation_takes_the_first_offered_that_is_served() {
        let served = &SPDY_VERSIONS[..];
        assert_eq!(
            negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"], served),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            negotiate(["v2.channel.k8s.io, v4.channel.k8s.io"], served),
            Some("v2.channel.k8s.io")
        );
        assert_eq!(negotiate(["v9"], served), None);
    }

    #[test]
    fn sizes_split_anywhere() {
        let all = br#"{"Width":80,"Height":24}{"Width":100,"Height":50}"#;
        for cut in 0..all.len() {
            let mut buf = all[..cut].to_vec();
            let mut got = decode_sizes(&mut buf).unwrap();
            buf.extend_from_slice(&all[cut..]);
            got.extend(decode_sizes(&mut buf).unwrap());
            assert_eq!(
                got,
                vec![
                    TerminalSize {
                        width: 80,
                        height: 24
                    },
                    TerminalSize {
                        width: 100,
                        height: 50
                    }
                ],
                "cut at {cut}"
            );
            assert!(buf.is_empty());
        }
        assert!(decode_sizes(&mut b"nope".to_vec()).is_err());
    }

    #[test]
    fn options_from_query() {
        let o = Options::from_query([
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("container", "c"),
            ("stdin", "true"),
            ("stdout", "1"),
            ("stderr", "false"),
            ("tty", "x"),
        ]);
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert_eq!(o.container.as_deref(), Some("c"));
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        assert!(o.validate().is_ok());
        assert!(Options::default().validate().is_err());
    }

    #[test]
    fn exit_status_as_upstream() {
        let s: Value = serde_json::from_slice(&status_json(&Outcome::ExitCode {
            code: 3,
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        }))
        .unwrap();
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            status_json(&Outcome::Success),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(error_stream_bytes(Version::V3, &Outcome::Success), None);
        assert_eq!(
            error_stream_bytes(Version::V2, &Outcome::Error("boom".into())),
            Some(b"boom".to_vec())
        );
    }
}

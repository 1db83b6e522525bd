//! The WebSocket channel subprotocols (`channel.k8s.io`, `v2`..`v5.channel.k8s.io`,
//! `base64.channel.k8s.io` and its versioned forms): each message starts with the channel
//! number, a byte (binary) or an ASCII digit followed by base64 (text). v5 adds the close
//! signal, a message on channel 255 naming the channel to half-close.

use base64::Engine;

use crate::remotecommand::{Version, CLOSE};

/// The exec/attach subprotocols the node serves, newest first (the order it prefers when a
/// client offers several is the client's, as upstream).
pub const EXEC_PROTOCOLS: [&str; 9] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v3.channel.k8s.io",
    "v3.base64.channel.k8s.io",
    "v2.channel.k8s.io",
    "v2.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// A negotiated channel subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub version: Version,
    /// Text messages with a digit and base64, rather than binary ones with a byte.
    pub base64: bool,
}

impl Protocol {
    /// The protocol a negotiated subprotocol name stands for; the empty name (a client
    /// offering none) is plain `channel.k8s.io`.
    pub fn from_name(name: &str) -> Option<Protocol> {
        Some(Protocol {
            version: Version::from_name(name)?,
            base64: name.contains("base64"),
        })
    }
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Bytes for a channel.
    Data { channel: u8, data: Vec<u8> },
    /// v5's close signal: the client will send no more on `channel`.
    Close { channel: u8 },
    /// An empty message, which carries nothing (upstream skips them).
    Empty,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid base64 in channel message: {0}")]
    Base64(String),
    #[error("invalid channel {0:?} in a base64 channel message")]
    Channel(u8),
    #[error("close signal without a channel")]
    Close,
}

/// Decodes one message's payload.
pub fn decode(proto: Protocol, msg: &[u8]) -> Result<Incoming, Error> {
    let Some((&first, rest)) = msg.split_first() else {
        return Ok(Incoming::Empty);
    };
    if proto.version >= Version::V5 && !proto.base64 && first == CLOSE {
        return match rest.first() {
            Some(&channel) => Ok(Incoming::Close { channel }),
            None => Err(Error::Close),
        };
    }
    if !proto.base64 {
        return Ok(Incoming::Data {
            channel: first,
            data: rest.to_vec(),
        });
    }
    let channel = first.checked_sub(b'0').ok_or(Error::Channel(first))?;
    if channel > 9 {
        return Err(Error::Channel(first));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|e| Error::Base64(e.to_string()))?;
    Ok(Incoming::Data { channel, data })
}

/// An outgoing message: binary, or text for the base64 protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Binary(Vec<u8>),
    Text(String),
}

/// Encodes `data` on `channel`.
pub fn encode(proto: Protocol, channel: u8, data: &[u8]) -> Outgoing {
    if proto.base64 {
        let mut s = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        s.push(char::from(b'0'.wrapping_add(channel)));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
        return Outgoing::Text(s);
    }
    let mut v = Vec::with_capacity(1 + data.len());
    v.push(channel);
    v.extend_from_slice(data);
    Outgoing::Binary(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V5: Protocol = Protocol {
        version: Version::V5,
        base64: false,
    };
    const V4: Protocol = Protocol {
        version: Version::V4,
        base64: false,
    };
    const B64: Protocol = Protocol {
        version: Version::V1,
        base64: true,
    };

    #[test]
    fn upstream_examples() {
        // channel.k8s.io: "foo\n" on stdin, "\n" on stdout.
        assert_eq!(
            decode(V4, &[0, 102, 111, 111, 10]).unwrap(),
            Incoming::Data {
                channel: 0,
                data: b"foo\n".to_vec()
            }
        );
        assert_eq!(encode(V4, 1, b"\n"), Outgoing::Binary(vec![1, 10]));
        // base64.channel.k8s.io: "Zm9vCg==" is "foo\n" on '0'; "\n" on '1' is "Cg==".
        assert_eq!(
            decode(B64, b"0Zm9vCg==").unwrap(),
            Incoming::Data {
                channel: 0,
                data: b"foo\n".to_vec()
            }
        );
        assert_eq!(encode(B64, 1, b"\n"), Outgoing::Text("1Cg==".into()));
    }

    #[test]
    fn close_signal_only_in_v5() {
        assert_eq!(
            decode(V5, &[255, 0]).unwrap(),
            Incoming::Close { channel: 0 }
        );
        assert_eq!(decode(V5, &[255]), Err(Error::Close));
        assert_eq!(
            decode(V4, &[255, 0]).unwrap(),
            Incoming::Data {
                channel: 255,
                data: vec![0]
            }
        );
        assert_eq!(decode(V5, &[]).unwrap(), Incoming::Empty);
    }

    #[test]
    fn protocols_by_name() {
        assert_eq!(Protocol::from_name("v5.channel.k8s.io"), Some(V5));
        assert_eq!(Protocol::from_name("base64.channel.k8s.io"), Some(B64));
        assert_eq!(
            Protocol::from_name(""),
            Some(Protocol {
                version: Version::V1,
                base64: false
            })
        );
        for name in EXEC_PROTOCOLS {
            assert!(Protocol::from_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn bad_base64_is_an_error() {
        assert!(decode(B64, b"0!!!").is_err());
        assert_eq!(decode(B64, b"x"), Err(Error::Channel(b'x')));
    }

    /// Fuzz-style: no input panics any protocol's decoder, and binary frames roundtrip.
    #[test]
    fn decoder_never_panics_on_any_input() {
        let mut rng = crate::testrng::Rng::new(42);
        for name in EXEC_PROTOCOLS {
            let proto = Protocol::from_name(name).unwrap();
            for _ in 0..2000 {
                let n = rng.below(64);
                let msg: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                let _ = decode(proto, &msg);
                let channel = rng.below(5) as u8;
                let back = match encode(proto, channel, &msg) {
                    Outgoing::Binary(b) => decode(proto, &b),
                    Outgoing::Text(t) => decode(proto, t.as_bytes()),
                };
                assert_eq!(
                    back.unwrap(),
                    Incoming::Data { channel, data: msg },
                    "{name}"
                );
            }
        }
    }
}

//! Upstream's URLs library: `url()`, `isURL()` and the `URL` accessors, with Go's
//! `url.ParseRequestURI` rules (an absolute URI with `scheme://` or `scheme:/`, or an absolute
//! path; no fragments split off; no opaque `mailto:x` forms).

use super::{boolean, fail, library_type, owned, str_arg, string, Ret};
use cel::common::types::{CelList, CelMap, CelMapKey, CelString, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env};
use std::collections::HashMap;

/// A parsed URL: the parts Go's `url.URL` exposes to the accessors.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
    raw: String,
}

library_type!(Url, URL_TYPE, "kubernetes.URL");

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(URL_TYPE.to_owned())?;
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], to_url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    env.add_overload(
        "string",
        "url_to_string",
        vec![URL_TYPE.to_owned()],
        to_string,
    )?;
    let url = || URL_TYPE.to_owned();
    env.add_member_overload("getScheme", "url_get_scheme", url(), vec![], get_scheme)?;
    env.add_member_overload("getHost", "url_get_host", url(), vec![], get_host)?;
    env.add_member_overload(
        "getHostname",
        "url_get_hostname",
        url(),
        vec![],
        get_hostname,
    )?;
    env.add_member_overload("getPort", "url_get_port", url(), vec![], get_port)?;
    env.add_member_overload(
        "getEscapedPath",
        "url_get_escaped_path",
        url(),
        vec![],
        get_escaped_path,
    )?;
    env.add_member_overload("getQuery", "url_get_query", url(), vec![], get_query)?;
    Ok(())
}

/// Parses as Go's `url.ParseRequestURI`, with upstream's error message.
pub(crate) fn parse(raw: &str) -> Result<Url, String> {
    let invalid = || {
        format!(
            "URL parse error during conversion from string: parse {raw:?}: invalid URI for request"
        )
    };
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!(
            "URL parse error during conversion from string: parse {raw:?}: net/url: invalid control character in URL"
        ));
    }
    let (rest, query) = match raw.split_once('?') {
        Some((r, q)) => (r, q),
        None => (raw, ""),
    };
    let (scheme, rest) = if rest.starts_with('/') {
        ("", rest)
    } else {
        let colon = rest.find(':').ok_or_else(invalid)?;
        let scheme = &rest[..colon];
        let valid = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid {
            return Err(format!(
                "URL parse error during conversion from string: parse {raw:?}: first path segment in URL cannot contain colon"
            ));
        }
        let rest = &rest[colon + 1..];
        if !rest.starts_with('/') {
            return Err(invalid());
        }
        (scheme, rest)
    };
    let (host, path) = match rest.strip_prefix("//") {
        Some(authority) if !scheme.is_empty() || !rest.starts_with("///") => {
            let end = authority.find('/').unwrap_or(authority.len());
            let host = &authority[..end];
            let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
            (host, &authority[end..])
        }
        _ => ("", rest),
    };
    if host.contains(|c: char| c.is_whitespace()) {
        return Err(format!(
            "URL parse error during conversion from string: parse {raw:?}: invalid character \" \" in host name"
        ));
    }
    Ok(Url {
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        raw: raw.to_string(),
    })
}

fn to_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "url")?;
    owned(parse(s).map_err(|e| fail("url", e))?)
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(parse(str_arg(&args, 0, "isURL")?).is_ok())
}

fn this<'x>(args: &'x [CowVal<'_, '_>], function: &str) -> Result<&'x Url, cel::ExecutionError> {
    args.first()
        .and_then(|a| a.as_ref().downcast_ref::<Url>())
        .ok_or_else(|| fail(function, "receiver is not a URL"))
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    string(this(&args, "string")?.raw.clone())
}

fn get_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    string(this(&args, "getScheme")?.scheme.clone())
}

fn get_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    string(this(&args, "getHost")?.host.clone())
}

/// Go's `Hostname()`: the host without port, IPv6 brackets removed.
fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h).unwrap_or(rest);
    }
    host.split_once(':').map(|(h, _)| h).unwrap_or(host)
}

fn get_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    string(hostname(&this(&args, "getHostname")?.host).to_string())
}

fn get_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let host = &this(&args, "getPort")?.host;
    let after = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(_, p)| p).unwrap_or(""),
        None => host
            .split_once(':')
            .map(|(_, p)| p)
            .map(|p| &host[host.len() - p.len() - 1..])
            .unwrap_or(""),
    };
    string(after.strip_prefix(':').unwrap_or("").to_string())
}

fn get_escaped_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    string(this(&args, "getEscapedPath")?.path.clone())
}

/// Go's `url.ParseQuery`, keeping what it could parse: `map(string, list(string))`.
fn get_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let query = &this(&args, "getQuery")?.query;
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query
        .split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (unescape(k), unescape(v)) else {
            continue;
        };
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, list)) => list.push(v),
            None => values.push((k, vec![v])),
        }
    }
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = values
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val + 'v>> = vs
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val + 'v>)
                .collect();
            (
                CelMapKey::from(k),
                Box::new(CelList::from(list)) as Box<dyn Val + 'v>,
            )
        })
        .collect();
    owned(CelMap::from(map))
}

/// Query unescaping: `+` is a space, `%XX` a byte; `None` on a bad escape.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

//! Upstream's IP and CIDR libraries: `ip()`, `isIP()`, `ip.isCanonical()`, `cidr()`,
//! `isCIDR()` and their accessors, with Go `netip`'s parsing (no zones, no leading zeros) and
//! upstream's refusal of IPv4-mapped IPv6 addresses.

use super::{boolean, fail, int, library_type, owned, str_arg, string, Ret};
use cel::common::types::STRING_TYPE;
use cel::common::value::CowVal;
use cel::{DeclarationError, Env};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ip(IpAddr);

/// A prefix: an address and a length (the address is kept as written, unmasked).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    len: u8,
}

library_type!(Ip, IP_TYPE, "net.IP");
library_type!(Cidr, CIDR_TYPE, "net.CIDR");

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let ip = || IP_TYPE.to_owned();
    let cidr = || CIDR_TYPE.to_owned();
    env.add_type(ip())?;
    env.add_type(cidr())?;
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], to_ip)?;
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        is_canonical,
    )?;
    env.add_overload("string", "ip_to_string", vec![ip()], ip_string)?;
    env.add_member_overload("family", "ip_family", ip(), vec![], family)?;
    env.add_member_overload(
        "isUnspecified",
        "ip_is_unspecified",
        ip(),
        vec![],
        is_unspecified,
    )?;
    env.add_member_overload("isLoopback", "ip_is_loopback", ip(), vec![], is_loopback)?;
    env.add_member_overload(
        "isLinkLocalMulticast",
        "ip_is_link_local_multicast",
        ip(),
        vec![],
        is_link_local_multicast,
    )?;
    env.add_member_overload(
        "isLinkLocalUnicast",
        "ip_is_link_local_unicast",
        ip(),
        vec![],
        is_link_local_unicast,
    )?;
    env.add_member_overload(
        "isGlobalUnicast",
        "ip_is_global_unicast",
        ip(),
        vec![],
        is_global_unicast,
    )?;
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], to_cidr)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    env.add_overload("string", "cidr_to_string", vec![cidr()], cidr_string)?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_ip",
        cidr(),
        vec![ip()],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        cidr(),
        vec![STRING_TYPE],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr",
        cidr(),
        vec![cidr()],
        contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        cidr(),
        vec![STRING_TYPE],
        contains_cidr,
    )?;
    env.add_member_overload("ip", "cidr_ip", cidr(), vec![], cidr_ip)?;
    env.add_member_overload("masked", "cidr_masked", cidr(), vec![], masked)?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        cidr(),
        vec![],
        prefix_length,
    )?;
    Ok(())
}

/// Parses an address as upstream's `ip()`, with its error texts.
pub(crate) fn parse_ip(s: &str) -> Result<Ip, String> {
    if s.contains('%') {
        return Err(format!("IP address with zone value is not allowed: {s}"));
    }
    let addr: IpAddr = s
        .parse()
        .map_err(|_| format!("IP Address {s:?} parse error during conversion from string: ParseAddr({s:?}): unable to parse IP"))?;
    if let IpAddr::V6(v6) = addr {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
        }
    }
    Ok(Ip(addr))
}

/// Parses a prefix as upstream's `cidr()`, with its error texts.
pub(crate) fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let invalid = || {
        format!("network address parse error during conversion from string: netip.ParsePrefix({s:?}): invalid prefix")
    };
    let (addr, len) = s.split_once('/').ok_or_else(invalid)?;
    let addr = parse_ip(addr).map_err(|_| invalid())?.0;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let valid_len = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && !(len.len() > 1 && len.starts_with('0'));
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| valid_len && *l <= max)
        .ok_or_else(invalid)?;
    Ok(Cidr { addr, len })
}

fn ip_this<'x>(
    args: &'x [CowVal<'_, '_>],
    i: usize,
    f: &str,
) -> Result<&'x Ip, cel::ExecutionError> {
    args.get(i)
        .and_then(|a| a.as_ref().downcast_ref::<Ip>())
        .ok_or_else(|| fail(f, "argument is not an IP"))
}

fn cidr_this<'x>(
    args: &'x [CowVal<'_, '_>],
    i: usize,
    f: &str,
) -> Result<&'x Cidr, cel::ExecutionError> {
    args.get(i)
        .and_then(|a| a.as_ref().downcast_ref::<Cidr>())
        .ok_or_else(|| fail(f, "argument is not a CIDR"))
}

fn to_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    owned(parse_ip(str_arg(&args, 0, "ip")?).map_err(|e| fail("ip", e))?)
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(parse_ip(str_arg(&args, 0, "isIP")?).is_ok())
}

fn is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "ip.isCanonical")?;
    let ip = parse_ip(s).map_err(|e| fail("ip.isCanonical", e))?;
    boolean(ip.0.to_string() == s)
}

fn ip_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    string(ip_this(&args, 0, "string")?.0.to_string())
}

fn family<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    int(if ip_this(&args, 0, "family")?.0.is_ipv4() {
        4
    } else {
        6
    })
}

fn is_unspecified<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(ip_this(&args, 0, "isUnspecified")?.0.is_unspecified())
}

fn is_loopback<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(ip_this(&args, 0, "isLoopback")?.0.is_loopback())
}

fn is_link_local_multicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(match ip_this(&args, 0, "isLinkLocalMulticast")?.0 {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] & 0xff0f == 0xff02,
    })
}

fn link_local_unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_link_local_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(link_local_unicast(
        &ip_this(&args, 0, "isLinkLocalUnicast")?.0,
    ))
}

/// Go's `IsGlobalUnicast`: not unspecified, loopback, multicast, link-local or the IPv4
/// broadcast address (private ranges count as global).
fn is_global_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let a = ip_this(&args, 0, "isGlobalUnicast")?.0;
    let broadcast = a == IpAddr::V4(Ipv4Addr::BROADCAST);
    boolean(
        !broadcast
            && !a.is_unspecified()
            && !a.is_loopback()
            && !a.is_multicast()
            && !link_local_unicast(&a),
    )
}

fn to_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    owned(parse_cidr(str_arg(&args, 0, "cidr")?).map_err(|e| fail("cidr", e))?)
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    boolean(parse_cidr(str_arg(&args, 0, "isCIDR")?).is_ok())
}

fn cidr_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let c = cidr_this(&args, 0, "string")?;
    string(format!("{}/{}", c.addr, c.len))
}

/// `addr` with all but the first `len` bits cleared.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

fn contains(c: &Cidr, ip: IpAddr) -> bool {
    c.addr.is_ipv4() == ip.is_ipv4() && mask(ip, c.len) == mask(c.addr, c.len)
}

fn contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let c = cidr_this(&args, 0, "containsIP")?;
    let ip = match args.get(1).and_then(|a| a.as_ref().downcast_ref::<Ip>()) {
        Some(ip) => ip.0,
        None => {
            parse_ip(str_arg(&args, 1, "containsIP")?)
                .map_err(|e| fail("containsIP", e))?
                .0
        }
    };
    boolean(contains(c, ip))
}

fn contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let c = cidr_this(&args, 0, "containsCIDR")?;
    let other = match args.get(1).and_then(|a| a.as_ref().downcast_ref::<Cidr>()) {
        Some(o) => o.clone(),
        None => {
            parse_cidr(str_arg(&args, 1, "containsCIDR")?).map_err(|e| fail("containsCIDR", e))?
        }
    };
    boolean(other.len >= c.len && contains(c, other.addr))
}

fn cidr_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    owned(Ip(cidr_this(&args, 0, "ip")?.addr))
}

fn masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let c = cidr_this(&args, 0, "masked")?;
    owned(Cidr {
        addr: mask(c.addr, c.len),
        len: c.len,
    })
}

fn prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    int(i64::from(cidr_this(&args, 0, "prefixLength")?.len))
}

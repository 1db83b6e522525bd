//! Upstream's format library: `format.dns1123Label().validate(s)` and friends, returning
//! `optional.none()` for a valid string and `optional.of([messages])` otherwise, with the
//! messages of apimachinery's validators.

use super::{fail, library_type, owned, str_arg, Ret};
use cel::common::types::{CelList, CelOptional, CelString, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env};
use skiff_apimachinery::validation::names;

/// A named format.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Format(&'static str);

library_type!(Format, FORMAT_TYPE, "kubernetes.NamedFormat");

/// The formats upstream names, each with its validator.
/// A validator: the messages for an invalid string, none for a valid one.
type Validator = fn(&str) -> Vec<String>;

const FORMATS: &[(&str, Validator)] = &[
    ("dns1123Label", names::is_dns1123_label),
    ("dns1123Subdomain", names::is_dns1123_subdomain),
    ("dns1035Label", names::is_dns1035_label),
    ("qualifiedName", names::is_qualified_name),
    ("labelValue", names::is_valid_label_value),
    ("dns1123LabelPrefix", dns1123_label_prefix),
    ("dns1123SubdomainPrefix", dns1123_subdomain_prefix),
    ("dns1035LabelPrefix", dns1035_label_prefix),
    ("uri", uri),
    ("uuid", uuid),
    ("byte", byte),
    ("date", date),
    ("datetime", datetime),
];

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(FORMAT_TYPE.to_owned())?;
    env.add_overload(
        "format.dns1123Label",
        "format_dns1123_label",
        vec![],
        dns1123_label_fn,
    )?;
    env.add_overload(
        "format.dns1123Subdomain",
        "format_dns1123_subdomain",
        vec![],
        |_| owned(Format("dns1123Subdomain")),
    )?;
    env.add_overload(
        "format.dns1035Label",
        "format_dns1035_label",
        vec![],
        |_| owned(Format("dns1035Label")),
    )?;
    env.add_overload(
        "format.qualifiedName",
        "format_qualified_name",
        vec![],
        |_| owned(Format("qualifiedName")),
    )?;
    env.add_overload("format.labelValue", "format_label_value", vec![], |_| {
        owned(Format("labelValue"))
    })?;
    env.add_overload(
        "format.dns1123LabelPrefix",
        "format_dns1123_label_prefix",
        vec![],
        |_| owned(Format("dns1123LabelPrefix")),
    )?;
    env.add_overload(
        "format.dns1123SubdomainPrefix",
        "format_dns1123_subdomain_prefix",
        vec![],
        |_| owned(Format("dns1123SubdomainPrefix")),
    )?;
    env.add_overload(
        "format.dns1035LabelPrefix",
        "format_dns1035_label_prefix",
        vec![],
        |_| owned(Format("dns1035LabelPrefix")),
    )?;
    env.add_overload("format.uri", "format_uri", vec![], |_| owned(Format("uri")))?;
    env.add_overload("format.uuid", "format_uuid", vec![], |_| {
        owned(Format("uuid"))
    })?;
    env.add_overload("format.byte", "format_byte", vec![], |_| {
        owned(Format("byte"))
    })?;
    env.add_overload("format.date", "format_date", vec![], |_| {
        owned(Format("date"))
    })?;
    env.add_overload("format.datetime", "format_datetime", vec![], |_| {
        owned(Format("datetime"))
    })?;
    env.add_overload("format.named", "format_named", vec![STRING_TYPE], named)?;
    env.add_member_overload(
        "validate",
        "format_validate",
        FORMAT_TYPE.to_owned(),
        vec![STRING_TYPE],
        validate,
    )?;
    Ok(())
}

fn dns1123_label_fn<'b, 'v>(_: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    owned(Format("dns1123Label"))
}

fn named<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let name = str_arg(&args, 0, "format.named")?;
    let found = FORMATS.iter().find(|(n, _)| *n == name);
    owned(match found {
        Some((n, _)) => CelOptional::of(Box::new(Format(n))),
        None => CelOptional::none(),
    })
}

fn validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let format = args
        .first()
        .and_then(|a| a.as_ref().downcast_ref::<Format>())
        .ok_or_else(|| fail("validate", "receiver is not a format"))?;
    let s = str_arg(&args, 1, "validate")?;
    let validator = FORMATS
        .iter()
        .find(|(n, _)| *n == format.0)
        .map(|(_, v)| *v)
        .ok_or_else(|| fail("validate", "unknown format"))?;
    let errors = validator(s);
    if errors.is_empty() {
        return owned(CelOptional::none());
    }
    let list: Vec<Box<dyn Val + 'v>> = errors
        .into_iter()
        .map(|e| Box::new(CelString::from(e)) as Box<dyn Val + 'v>)
        .collect();
    owned(CelOptional::of(Box::new(CelList::from(list))))
}

/// Upstream's prefix validators: the name with a trailing `-` allowed (for `generateName`).
fn prefix(s: &str, validate: fn(&str) -> Vec<String>) -> Vec<String> {
    let trimmed = s.strip_suffix('-').unwrap_or(s);
    if trimmed.is_empty() && !s.is_empty() {
        return Vec::new();
    }
    validate(trimmed)
}

fn dns1123_label_prefix(s: &str) -> Vec<String> {
    prefix(s, names::is_dns1123_label)
}

fn dns1123_subdomain_prefix(s: &str) -> Vec<String> {
    prefix(s, names::is_dns1123_subdomain)
}

fn dns1035_label_prefix(s: &str) -> Vec<String> {
    prefix(s, names::is_dns1035_label)
}

fn uri(s: &str) -> Vec<String> {
    match super::urls::parse(s) {
        Ok(_) => Vec::new(),
        Err(_) => vec!["must be a valid URI".into()],
    }
}

fn uuid(s: &str) -> Vec<String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, l)| g.len() == l && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Vec::new()
    } else {
        vec!["does not match the UUID format".into()]
    }
}

fn byte(s: &str) -> Vec<String> {
    let ok = s.len().is_multiple_of(4)
        && s.trim_end_matches('=').len() + 2 >= s.len()
        && s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if ok {
        Vec::new()
    } else {
        vec!["invalid base64".into()]
    }
}

fn date(s: &str) -> Vec<String> {
    match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(_) => Vec::new(),
        Err(_) => vec!["invalid date".into()],
    }
}

fn datetime(s: &str) -> Vec<String> {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(_) => Vec::new(),
        Err(_) => vec!["invalid datetime".into()],
    }
}

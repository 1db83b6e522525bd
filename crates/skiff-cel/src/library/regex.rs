//! Upstream's regex library: `find` and `findAll` on strings (RE2 syntax, which the `regex`
//! crate accepts for the constructs Kubernetes rules use).

use super::{fail, owned, str_arg, string, Ret};
use cel::common::types::{CelInt, CelList, CelString, INT_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env};

/// The name `matches` calls are rewritten to at compile time (`@` keeps it out of reach of
/// expressions), so that they use the compiled-pattern cache: the `cel` crate's own
/// `matches` compiles its pattern on every call, which dominated rule evaluation time.
pub(crate) const CACHED_MATCHES: &str = "@k8s_matches";

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(
        CACHED_MATCHES,
        "string_matches_cached",
        STRING_TYPE,
        vec![STRING_TYPE],
        matches,
    )?;
    env.add_overload(
        CACHED_MATCHES,
        "matches_cached",
        vec![STRING_TYPE, STRING_TYPE],
        matches,
    )?;
    env.add_member_overload(
        "find",
        "string_find_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all_n,
    )?;
    Ok(())
}

/// Compiles a pattern, with a size limit so a hostile pattern can't eat memory.
pub(crate) fn compile(pattern: &str) -> Result<::regex::Regex, String> {
    ::regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regex: {e}"))
}

/// Most distinct patterns one thread keeps compiled; the cache is emptied when full.
const CACHE_SIZE: usize = 512;

thread_local! {
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<::regex::Regex>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `pattern` compiled, from this thread's cache when it was compiled before.
pub(crate) fn cached(pattern: &str) -> Result<std::rc::Rc<::regex::Regex>, String> {
    if let Some(re) = CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(re);
    }
    let re = std::rc::Rc::new(compile(pattern)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_SIZE {
            c.clear();
        }
        c.insert(pattern.to_string(), re.clone());
    });
    Ok(re)
}

/// The standard `matches`, with the `cel` crate's error text.
fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "matches")?;
    let pattern = str_arg(&args, 1, "matches")?;
    let re = cached(pattern)
        .map_err(|e| fail("matches", format!("'{pattern}' not a valid regex:\n{e}")))?;
    super::boolean(re.is_match(s))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let s = str_arg(&args, 0, "find")?;
    let re = cached(str_arg(&args, 1, "find")?).map_err(|e| fail("find", e))?;
    string(
        re.find(s)
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
    )
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    matches_up_to(&args, -1)
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Ret<'b, 'v> {
    let limit = args
        .get(2)
        .and_then(|a| a.as_ref().downcast_ref::<CelInt>())
        .map(|i| *i.inner())
        .ok_or_else(|| fail("findAll", "limit is not an int"))?;
    matches_up_to(&args, limit)
}

/// Go's `FindAllString(s, n)`: every match when `n < 0`, else at most `n`.
fn matches_up_to<'b, 'v>(args: &[CowVal<'b, 'v>], limit: i64) -> Ret<'b, 'v> {
    let s = str_arg(args, 0, "findAll")?;
    let re = cached(str_arg(args, 1, "findAll")?).map_err(|e| fail("findAll", e))?;
    let take = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    let found: Vec<Box<dyn Val + 'v>> = re
        .find_iter(s)
        .take(take)
        .map(|m| Box::new(CelString::from(m.as_str().to_string())) as Box<dyn Val + 'v>)
        .collect();
    owned(CelList::from(found))
}

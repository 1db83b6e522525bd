//! Which names a CRD gets, as upstream's naming controller decides: a requested name is
//! accepted when it is already this CRD's or no other CRD of the group has accepted it.

use std::collections::HashSet;

use serde_json::{json, Value};

/// The outcome for one CRD: its accepted names and its `NamesAccepted` condition.
#[derive(Debug, PartialEq)]
pub struct Naming {
    pub accepted: Value,
    /// `(status, reason, message)` of `NamesAccepted`.
    pub condition: (&'static str, &'static str, String),
}

/// Decides `crd`'s names against the accepted names of `others` (the other CRDs).
pub fn decide(crd: &Value, others: &[Value]) -> Naming {
    let group = &crd["spec"]["group"];
    let mut resources = HashSet::new();
    let mut kinds = HashSet::new();
    for other in others.iter().filter(|o| {
        o["spec"]["group"] == *group && o["metadata"]["name"] != crd["metadata"]["name"]
    }) {
        let a = &other["status"]["acceptedNames"];
        for f in ["plural", "singular"] {
            resources.insert(text(&a[f]));
        }
        resources.extend(list(&a["shortNames"]));
        kinds.insert(text(&a["kind"]));
        kinds.insert(text(&a["listKind"]));
    }
    resources.remove("");
    kinds.remove("");
    let requested = &crd["spec"]["names"];
    let current = &crd["status"]["acceptedNames"];
    let mut accepted = if current.is_object() {
        current.clone()
    } else {
        json!({})
    };
    let mut condition = None;
    // Each conflict overwrites the condition: the last one found is reported, as upstream.
    let check = |accepted: &mut Value, field: &str, used: &HashSet<String>, reason| {
        let want = text(&requested[field]);
        if want == text(&current[field]) || !used.contains(&want) {
            accepted[field] = json!(want);
            None
        } else {
            Some(("False", reason, format!("{want:?} is already in use")))
        }
    };
    for (field, reason) in [
        ("plural", "PluralConflict"),
        ("singular", "SingularConflict"),
    ] {
        if let Some(c) = check(&mut accepted, field, &resources, reason) {
            condition = Some(c);
        }
    }
    let short = list(&requested["shortNames"]);
    if short != list(&current["shortNames"]) {
        let mine: HashSet<String> = list(&current["shortNames"]).into_iter().collect();
        let taken: Vec<String> = short
            .iter()
            .filter(|s| !mine.contains(*s) && resources.contains(*s))
            .map(|s| format!("{s:?} is already in use"))
            .collect();
        if taken.is_empty() {
            accepted["shortNames"] = json!(short);
        } else {
            let message = match taken.as_slice() {
                [one] => one.clone(),
                many => format!("[{}]", many.join(", ")),
            };
            condition = Some(("False", "ShortNamesConflict", message));
        }
    }
    for (field, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        if let Some(c) = check(&mut accepted, field, &kinds, reason) {
            condition = Some(c);
        }
    }
    accepted["categories"] = requested["categories"].clone();
    if let Some(map) = accepted.as_object_mut() {
        map.retain(|_, v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    }
    Naming {
        accepted,
        condition: condition.unwrap_or(("True", "NoConflicts", "no conflicts found".into())),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str, accepted: Option<(&str, &str)>) -> Value {
        let mut c = json!({
            "metadata": {"name": name},
            "spec": {"group": "example.com", "names": {"plural": plural, "singular": plural.trim_end_matches('s'),
                     "kind": kind, "listKind": format!("{kind}List"), "shortNames": ["x"]}},
        });
        if let Some((p, k)) = accepted {
            c["status"]["acceptedNames"] = json!({"plural": p, "singular": p.trim_end_matches('s'),
                "kind": k, "listKind": format!("{k}List"), "shortNames": ["x"]});
        }
        c
    }

    #[test]
    fn fresh_names_are_accepted() {
        let n = decide(&crd("widgets.example.com", "widgets", "Widget", None), &[]);
        assert_eq!(
            n.condition,
            ("True", "NoConflicts", "no conflicts found".into())
        );
        assert_eq!(n.accepted["plural"], "widgets");
        assert_eq!(n.accepted["listKind"], "WidgetList");
        assert_eq!(n.accepted["shortNames"], json!(["x"]));
    }

    #[test]
    fn names_another_crd_of_the_group_holds_are_refused_and_the_last_conflict_reported() {
        let other = crd(
            "gadgets.example.com",
            "gadgets",
            "Gadget",
            Some(("gadgets", "Gadget")),
        );
        let mut mine = crd("widgets.example.com", "widgets", "Widget", None);
        mine["spec"]["names"]["singular"] = json!("gadgets");
        let n = decide(&mine, &[other]);
        assert_eq!(
            n.condition,
            (
                "False",
                "ShortNamesConflict",
                "\"x\" is already in use".into()
            )
        );
        assert!(n.accepted.get("singular").is_none());
        assert_eq!(n.accepted["plural"], "widgets");
    }

    #[test]
    fn a_kind_in_use_is_a_kind_conflict_and_other_groups_do_not_count() {
        let mut other = crd(
            "gadgets.example.com",
            "gadgets",
            "Widget",
            Some(("gadgets", "Widget")),
        );
        other["status"]["acceptedNames"]["shortNames"] = json!([]);
        let n = decide(
            &crd("widgets.example.com", "widgets", "Widget", None),
            &[other.clone()],
        );
        assert_eq!(
            n.condition,
            (
                "False",
                "ListKindConflict",
                "\"WidgetList\" is already in use".into()
            )
        );
        other["spec"]["group"] = json!("other.io");
        let n = decide(
            &crd("widgets.example.com", "widgets", "Widget", None),
            &[other],
        );
        assert_eq!(n.condition.0, "True");
    }

    #[test]
    fn names_already_accepted_stay_accepted() {
        let mine = crd(
            "widgets.example.com",
            "widgets",
            "Widget",
            Some(("widgets", "Widget")),
        );
        let n = decide(&mine, std::slice::from_ref(&mine));
        assert_eq!(n.condition.0, "True");
    }
}

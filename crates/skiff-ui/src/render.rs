//! Server-side HTML, pure: one fragment per object (the node's own part; its children are
//! fragments of their own, so a pod's change re-renders that pod only), timeline lines, and
//! the desired/actual YAML view. Every string from the cluster is escaped here.

use crate::model::{
    containers, endpoints, other_state, parent_of, pod_state, route_backends, workload_gap, Gap,
    Key, Kind, State,
};
use crate::timeline::Line;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;

/// One node of the page: where it goes and its own HTML, as sent to the browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub id: String,
    /// The parent node's id; None for a top-level card.
    pub parent: Option<String>,
    pub ns: String,
    /// Siblings are ordered by this.
    pub sort: String,
    /// `converged`, `reconciling`, `failed`, `idle`.
    pub state: &'static str,
    pub kind: &'static str,
    pub html: String,
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn head(out: &mut String, key: &Key, state: State, word: &str) {
    let _ = write!(
        out,
        "<div class=\"head\"><span class=\"kind\">{kind}</span> \
         <button type=\"button\" class=\"name\" data-obj=\"{path}\" aria-haspopup=\"dialog\" \
         title=\"Show desired and actual YAML\">{name}</button> \
         <span class=\"ns\">{ns}</span> <span class=\"state s-{state}\">{word}</span></div>",
        kind = key.kind.name(),
        path = escape(&key.path()),
        name = escape(&key.name),
        ns = escape(&key.namespace),
        state = state.word(),
        word = escape(word),
    );
}

/// Percent of `part` in `whole`, for the bar's segments.
fn pct(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    (part.clamp(0, whole) * 100) / whole
}

fn gap_html(out: &mut String, gap: &Gap) {
    // The bar spans the larger of desired and existing: ready, existing but not ready, and
    // missing (desired not yet existing) or surplus (existing beyond desired).
    let whole = gap.desired.max(gap.current).max(gap.ready);
    let ready = gap.ready.min(whole);
    let pending = gap.current.saturating_sub(gap.ready).max(0);
    let missing = gap
        .desired
        .saturating_sub(gap.current.max(gap.ready))
        .max(0);
    let label = format!(
        "desired {}: {} ready, {} not ready, {} missing",
        gap.desired, ready, pending, missing
    );
    let _ = write!(
        out,
        "<div class=\"bar\" role=\"img\" aria-label=\"{}\">\
         <span class=\"seg ok\" data-w=\"{}\"></span>\
         <span class=\"seg pending\" data-w=\"{}\"></span>\
         <span class=\"seg missing\" data-w=\"{}\"></span></div>",
        escape(&label),
        pct(ready, whole),
        pct(pending, whole),
        pct(missing, whole),
    );
    let _ = write!(
        out,
        "<dl class=\"nums\"><div class=\"desired\"><dt>desired</dt><dd>{}</dd></div>\
         <div><dt>{}</dt><dd>{}</dd></div>",
        gap.desired,
        if gap.unit == "completions" {
            "active+done"
        } else {
            "existing"
        },
        gap.current
    );
    let _ = write!(
        out,
        "<div class=\"ready\"><dt>{}</dt><dd>{}</dd></div>",
        if gap.unit == "completions" {
            "succeeded"
        } else {
            "ready"
        },
        gap.ready
    );
    if let Some(u) = gap.updated {
        let _ = write!(out, "<div><dt>updated</dt><dd>{u}</dd></div>");
    }
    if let Some(a) = gap.available {
        let _ = write!(out, "<div><dt>available</dt><dd>{a}</dd></div>");
    }
    let _ = write!(
        out,
        "<div><dt>generation</dt><dd>{} (observed {})</dd></div></dl>",
        gap.generation, gap.observed_generation
    );
    if !gap.images.is_empty() {
        let _ = write!(
            out,
            "<p class=\"images\">images: {}</p>",
            escape(&gap.images.join(", "))
        );
    }
    if !gap.conditions.is_empty() {
        out.push_str("<ul class=\"conds\" aria-label=\"conditions\">");
        for (t, s, r) in &gap.conditions {
            let reason = if r.is_empty() {
                String::new()
            } else {
                format!(" ({})", escape(r))
            };
            let _ = write!(
                out,
                "<li class=\"c-{}\">{}={}{reason}</li>",
                if s == "True" { "true" } else { "other" },
                escape(t),
                escape(s)
            );
        }
        out.push_str("</ul>");
    }
}

/// The fragment of one object, or None for kinds that are timeline-only (Events).
pub fn fragment(kind: Kind, obj: &Value) -> Option<Fragment> {
    let key = Key::of(kind, obj)?;
    let mut html = String::new();
    let state = match kind {
        Kind::Event => return None,
        k if k.is_workload() => {
            let gap = workload_gap(k, obj)?;
            head(&mut html, &key, gap.state, gap.state.word());
            gap_html(&mut html, &gap);
            gap.state
        }
        Kind::Pod => {
            let (state, word) = pod_state(obj);
            head(&mut html, &key, state, &word);
            html.push_str("<ul class=\"containers\" aria-label=\"containers\">");
            for c in containers(obj) {
                let _ = write!(
                    html,
                    "<li class=\"{}\"><span class=\"kind\">container</span> {} \
                     <span class=\"image\">{}</span> <span class=\"cstate\">{}{}{}</span></li>",
                    if c.ready { "c-true" } else { "c-other" },
                    escape(&c.name),
                    escape(&c.image),
                    escape(&c.status),
                    if c.ready { ", ready" } else { "" },
                    if c.restarts > 0 {
                        format!(", {} restarts", c.restarts)
                    } else {
                        String::new()
                    }
                );
            }
            html.push_str("</ul>");
            state
        }
        Kind::Service => {
            let state = State::Idle;
            let spec = &obj["spec"];
            let word = format!(
                "{} {}",
                spec["type"].as_str().unwrap_or("ClusterIP"),
                spec["clusterIP"].as_str().unwrap_or_default()
            );
            head(&mut html, &key, state, word.trim());
            state
        }
        Kind::EndpointSlice => {
            let state = other_state(kind, obj);
            let eps = endpoints(obj);
            let ready = eps.iter().filter(|(_, r)| *r).count();
            head(
                &mut html,
                &key,
                state,
                &format!("{ready}/{} endpoints ready", eps.len()),
            );
            html.push_str("<ul class=\"endpoints\" aria-label=\"endpoints\">");
            for (name, ready) in eps {
                let _ = write!(
                    html,
                    "<li class=\"{}\"><span class=\"kind\">pod</span> {} <span class=\"cstate\">{}</span></li>",
                    if ready { "c-true" } else { "c-other" },
                    escape(&name),
                    if ready { "ready" } else { "not ready" }
                );
            }
            html.push_str("</ul>");
            state
        }
        Kind::Gateway | Kind::HTTPRoute => {
            let state = other_state(kind, obj);
            head(&mut html, &key, state, state.word());
            if kind == Kind::HTTPRoute {
                let backends = route_backends(obj);
                if !backends.is_empty() {
                    html.push_str("<ul class=\"backends\" aria-label=\"backend services\">");
                    for b in backends {
                        let _ = write!(
                            html,
                            "<li><span class=\"kind\">Service</span> {}</li>",
                            escape(&b)
                        );
                    }
                    html.push_str("</ul>");
                }
            }
            state
        }
        _ => return None,
    };
    Some(Fragment {
        id: key.id(),
        parent: parent_of(kind, obj).map(|p| p.id()),
        sort: format!("{}/{:02}/{}", key.namespace, kind.order(), key.name),
        ns: key.namespace,
        state: state.word(),
        kind: kind.name(),
        html,
    })
}

/// A timeline line's HTML (an `<li>`).
pub fn line_html(line: &Line) -> String {
    // hh:mm:ss of an RFC 3339 time; the full time in the datetime attribute.
    let short = line.time.get(11..19).unwrap_or(&line.time);
    let actor = if line.actor.is_empty() {
        String::new()
    } else {
        format!("<b class=\"actor\">{}</b> ", escape(&line.actor))
    };
    format!(
        "<li class=\"line{}\" data-ns=\"{}\"><time datetime=\"{}\">{}</time> {actor}{}</li>",
        if line.warning { " warn" } else { "" },
        escape(&line.namespace),
        escape(&line.time),
        escape(short),
        escape(&line.text),
    )
}

/// The desired part of an object (metadata without managedFields, and spec) and the actual
/// part (status), as YAML, side by side.
pub fn yaml_html(key: &Key, obj: &Value) -> String {
    let mut desired = obj.clone();
    let status = desired
        .as_object_mut()
        .and_then(|o| o.remove("status"))
        .unwrap_or(Value::Null);
    if let Some(meta) = desired["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    let yaml = |v: &Value| serde_yaml::to_string(v).unwrap_or_else(|e| format!("# {e}"));
    format!(
        "<div class=\"yaml\"><section aria-labelledby=\"y-desired\"><h3 id=\"y-desired\">Desired \
         (metadata, spec)</h3><pre tabindex=\"0\">{}</pre></section>\
         <section aria-labelledby=\"y-actual\"><h3 id=\"y-actual\">Actual (status)</h3>\
         <pre tabindex=\"0\">{}</pre></section></div><p class=\"yaml-of\" hidden>{}</p>",
        escape(&yaml(&desired)),
        escape(&if status.is_null() {
            "# no status\n".to_owned()
        } else {
            yaml(&status)
        }),
        escape(&key.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn workload_fragment_shows_desired_against_actual() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "c", "image": "nginx<1>"}]}}},
            "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                "updatedReplicas": 3, "availableReplicas": 3}});
        let f = fragment(Kind::Deployment, &d).unwrap();
        assert_eq!(f.id, "n_Deployment_default_web");
        assert_eq!(f.parent, None);
        assert_eq!(f.state, "reconciling");
        assert!(f.html.contains("<dt>desired</dt><dd>5</dd>"), "{}", f.html);
        assert!(f.html.contains("<dt>ready</dt><dd>3</dd>"), "{}", f.html);
        assert!(f
            .html
            .contains("aria-label=\"desired 5: 3 ready, 0 not ready, 2 missing\""));
        assert!(f.html.contains("data-w=\"60\""));
        assert!(f.html.contains("nginx&lt;1&gt;"));
    }

    #[test]
    fn bar_segments_never_exceed_the_whole() {
        for (desired, current, ready) in [(0, 0, 0), (3, 5, 5), (5, 3, 1), (2, 0, 4), (1, -3, 0)] {
            let gap = Gap {
                unit: "replicas",
                desired,
                current,
                ready,
                updated: None,
                available: None,
                generation: 1,
                observed_generation: 1,
                images: vec![],
                conditions: vec![],
                state: State::Reconciling,
            };
            let mut html = String::new();
            gap_html(&mut html, &gap);
            let total: i64 = html
                .split("data-w=\"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().parse::<i64>().unwrap())
                .sum();
            assert!(total <= 100, "{desired} {current} {ready}: {total}");
        }
    }

    #[test]
    fn pod_fragment_hangs_under_its_replicaset_with_containers() {
        let p = json!({"metadata": {"name": "web-1", "namespace": "default",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d9", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Pending"}});
        let f = fragment(Kind::Pod, &p).unwrap();
        assert_eq!(f.parent.as_deref(), Some("n_ReplicaSet_default_web-7d9"));
        assert!(f.html.contains("Pending (unscheduled)"));
        assert!(f.html.contains("<span class=\"image\">nginx</span>"));
        assert!(fragment(Kind::Event, &json!({"metadata": {"name": "e"}})).is_none());
    }

    #[test]
    fn yaml_splits_desired_from_actual_and_hides_managed_fields() {
        let key = Key {
            kind: Kind::Pod,
            namespace: "d".into(),
            name: "p".into(),
        };
        let html = yaml_html(
            &key,
            &json!({"metadata": {"name": "p", "managedFields": [{"manager": "m"}]},
                "spec": {"x": "<y>"}, "status": {"phase": "Running"}}),
        );
        assert!(!html.contains("manager"));
        let (desired, actual) = html.split_once("Actual (status)").unwrap();
        assert!(desired.contains("x: &lt;y&gt;"));
        assert!(actual.contains("phase: Running"));
    }
}

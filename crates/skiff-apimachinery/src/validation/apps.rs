//! Workload validation: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob and
//! ReplicationController specs and their update rules (`pkg/apis/apps|batch/validation`).

use serde_json::{Map, Value};

use super::names::{is_valid_percent, IS_NEGATIVE_ERROR_MSG};
use super::pod::validate_pod_template_spec;
use super::{child, fmt_go, non_negative, FieldError, FIELD_IMMUTABLE};
use crate::selector::LabelSelector;

const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";

fn labels_of(template: Option<&Value>) -> Option<&Map<String, Value>> {
    template?.pointer("/metadata/labels")?.as_object()
}

/// `ValidateLabelSelector` (strict): keys are qualified names, operators and values legal.
pub(super) fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = sel.get("matchLabels") {
        errs.extend(super::meta::validate_labels(
            Some(labels),
            &child(path, "matchLabels"),
        ));
    }
    if let Some(Value::Array(exprs)) = sel.get("matchExpressions") {
        for (i, e) in exprs.iter().enumerate() {
            let p = super::index(&child(path, "matchExpressions"), i);
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let n = e
                .get("values")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match op {
                "In" | "NotIn" if n == 0 => errs.push(FieldError::required(
                    &child(&p, "values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                )),
                "Exists" | "DoesNotExist" if n > 0 => errs.push(FieldError::forbidden(
                    &child(&p, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => errs.push(FieldError::invalid(
                    &child(&p, "operator"),
                    Value::from(other),
                    "not a valid selector operator",
                )),
            }
            let k = e.get("key").and_then(Value::as_str).unwrap_or("");
            for msg in super::names::is_qualified_name(k) {
                errs.push(FieldError::invalid(&child(&p, "key"), Value::from(k), msg));
            }
        }
    }
    errs
}

/// The selector checks shared by Deployment, ReplicaSet and StatefulSet: required,
/// non-empty, and matching the template's labels. `what` names the kind in upstream's
/// "empty selector is invalid for ..." message.
fn validate_selector_and_template(
    spec: &Value,
    what: &str,
    errs: &mut Vec<FieldError>,
) -> Option<LabelSelector> {
    let sel_path = "spec.selector";
    let sel = spec.get("selector").filter(|s| !s.is_null());
    match sel {
        None => errs.push(FieldError::required(sel_path, "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, sel_path));
            let n = sel
                .get("matchLabels")
                .and_then(Value::as_object)
                .map_or(0, Map::len)
                + sel
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
            if n == 0 {
                errs.push(
                    FieldError::invalid(
                        sel_path,
                        sel.clone(),
                        format!("empty selector is invalid for {what}"),
                    )
                    .rendered(fmt_go::label_selector(Some(sel))),
                );
            }
        }
    }
    let selector = LabelSelector::from_label_selector(sel.unwrap_or(&Value::Null)).ok();
    if let Some(selector) = &selector {
        if !selector.is_empty() && !selector.matches(labels_of(spec.get("template"))) {
            let labels = spec.pointer("/template/metadata/labels");
            errs.push(
                FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels.cloned().unwrap_or(Value::Null),
                    SELECTOR_MISMATCH,
                )
                .rendered(fmt_go::string_map(labels)),
            );
        }
    }
    selector
}

/// Template rules for workloads whose pods always restart.
fn require_restart_always(
    spec: &Value,
    kind: &str,
    deadline_invalid: bool,
    errs: &mut Vec<FieldError>,
) {
    let policy = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            Value::from(policy),
            &["Always"],
        ));
    }
    if let Some(ads) = spec
        .pointer("/template/spec/activeDeadlineSeconds")
        .filter(|v| !v.is_null())
    {
        let detail = format!("activeDeadlineSeconds in {kind} is not Supported");
        if deadline_invalid {
            errs.push(FieldError::invalid(
                "spec.template.spec.activeDeadlineSeconds",
                ads.clone(),
                detail,
            ));
        } else {
            errs.push(FieldError::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                detail,
            ));
        }
    }
}

/// `spec.selector` may not change once set (apps/v1 and batch/v1 rule).
fn selector_immutable(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(old) = old else { return };
    let new_sel = obj.pointer("/spec/selector");
    if new_sel != old.pointer("/spec/selector") {
        errs.push(
            FieldError::invalid(
                "spec.selector",
                new_sel.cloned().unwrap_or(Value::Null),
                FIELD_IMMUTABLE,
            )
            .rendered(fmt_go::label_selector(new_sel)),
        );
    }
}

fn spec_of(obj: &Value) -> &Value {
    static NULL: Value = Value::Null;
    obj.get("spec").unwrap_or(&NULL)
}

pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    non_negative(spec, "/replicas", "spec.replicas", &mut errs);
    validate_selector_and_template(spec, "deployment", &mut errs);
    errs.extend(validate_pod_template_spec(
        spec.get("template"),
        "spec.template",
        &[],
    ));
    require_restart_always(spec, "ReplicaSet", false, &mut errs);
    validate_deployment_strategy(spec.get("strategy"), &mut errs);
    non_negative(spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    non_negative(
        spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        &mut errs,
    );
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        non_negative(
            spec,
            "/progressDeadlineSeconds",
            "spec.progressDeadlineSeconds",
            &mut errs,
        );
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pds <= min_ready {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                Value::from(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(obj, old, &mut errs);
    errs
}

fn validate_deployment_strategy(strategy: Option<&Value>, errs: &mut Vec<FieldError>) {
    let null = Value::Null;
    let strategy = strategy.unwrap_or(&null);
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str).unwrap_or("") {
        "Recreate" => {
            if rolling.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match rolling {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => validate_rolling_update(ru, "spec.strategy.rollingUpdate", errs),
        },
        other => {
            let rendered = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}",
                fmt_go::quote(other)
            );
            errs.push(
                FieldError::not_supported(
                    "spec.strategy",
                    strategy.clone(),
                    &["Recreate", "RollingUpdate"],
                )
                .rendered(rendered),
            );
        }
    }
}

/// The value of an int-or-percent for the "both zero" check (percent taken as its number).
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim_end_matches('%').parse().unwrap_or(0),
        _ => 0,
    }
}

/// `ValidatePositiveIntOrPercent` for `maxSurge`/`maxUnavailable`.
fn validate_int_or_percent(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Some(Value::String(s)) => {
            for msg in is_valid_percent(s) {
                errs.push(
                    FieldError::invalid(path, Value::from(s.as_str()), msg).rendered(s.clone()),
                );
            }
        }
        Some(Value::Number(n)) if n.as_i64().unwrap_or(0) < 0 => {
            errs.push(FieldError::invalid(
                path,
                Value::from(n.as_i64().unwrap_or(0)),
                IS_NEGATIVE_ERROR_MSG,
            ));
        }
        _ => {}
    }
}

fn validate_rolling_update(ru: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let max_unavailable = ru.get("maxUnavailable");
    let max_surge = ru.get("maxSurge");
    validate_int_or_percent(max_unavailable, &child(path, "maxUnavailable"), errs);
    validate_int_or_percent(max_surge, &child(path, "maxSurge"), errs);
    if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
        let v = max_unavailable.cloned().unwrap_or(Value::from(0));
        errs.push(
            FieldError::invalid(
                &child(path, "maxUnavailable"),
                v.clone(),
                "may not be 0 when `maxSurge` is 0",
            )
            .rendered(fmt_go::int_or_string(&v)),
        );
    }
    if let Some(Value::String(s)) = max_unavailable {
        if is_valid_percent(s).is_empty() && int_or_percent_value(max_unavailable) > 100 {
            errs.push(
                FieldError::invalid(
                    &child(path, "maxUnavailable"),
                    Value::from(s.as_str()),
                    "must not be greater than 100%",
                )
                .rendered(s.clone()),
            );
        }
    }
}

pub(super) fn validate_replica_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    non_negative(spec, "/replicas", "spec.replicas", &mut errs);
    non_negative(spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    // Upstream's ReplicaSet message says "deployment" too.
    validate_selector_and_template(spec, "deployment", &mut errs);
    errs.extend(validate_pod_template_spec(
        spec.get("template"),
        "spec.template",
        &[],
    ));
    require_restart_always(spec, "ReplicaSet", false, &mut errs);
    selector_immutable(obj, old, &mut errs);
    errs
}

pub(super) fn validate_replication_controller(obj: &Value) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    non_negative(spec, "/replicas", "spec.replicas", &mut errs);
    non_negative(spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    let selector = spec.get("selector").and_then(Value::as_object);
    match selector.filter(|s| !s.is_empty()) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(super::meta::validate_labels(
                spec.get("selector"),
                "spec.selector",
            ));
            let selector = LabelSelector::from_map(sel);
            if !selector.matches(labels_of(spec.get("template"))) {
                let labels = spec.pointer("/template/metadata/labels");
                errs.push(
                    FieldError::invalid(
                        "spec.template.metadata.labels",
                        labels.cloned().unwrap_or(Value::Null),
                        "`selector` does not match template `labels`",
                    )
                    .rendered(fmt_go::string_map(labels)),
                );
            }
        }
    }
    errs.extend(validate_pod_template_spec(
        spec.get("template"),
        "spec.template",
        &[],
    ));
    require_restart_always(spec, "ReplicationController", false, &mut errs);
    errs
}

pub(super) fn validate_stateful_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    match spec
        .get("podManagementPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            Value::from(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = spec.get("updateStrategy");
    match strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = strategy
                .and_then(|s| s.get("rollingUpdate"))
                .filter(|r| !r.is_null())
            {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    ru.clone(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = strategy.and_then(|s| s.get("rollingUpdate")) {
                non_negative(
                    ru,
                    "/partition",
                    "spec.updateStrategy.rollingUpdate.partition",
                    &mut errs,
                );
                if let Some(mu) = ru.get("maxUnavailable").filter(|v| !v.is_null()) {
                    validate_int_or_percent(
                        Some(mu),
                        "spec.updateStrategy.rollingUpdate.maxUnavailable",
                        &mut errs,
                    );
                    if int_or_percent_value(Some(mu)) == 0 {
                        errs.push(
                            FieldError::invalid(
                                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                                mu.clone(),
                                "must be greater than 0",
                            )
                            .rendered(fmt_go::int_or_string(mu)),
                        );
                    }
                }
            }
        }
        _ => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            strategy.cloned().unwrap_or(Value::Null),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    non_negative(
        spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        &mut errs,
    );
    non_negative(spec, "/replicas", "spec.replicas", &mut errs);
    non_negative(spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    validate_selector_and_template(spec, "statefulset", &mut errs);
    // Upstream checks only the template's labels and annotations here (its pod spec check is
    // a TODO because claim templates are not volumes yet); bad pod specs surface when the
    // controller creates pods.
    let meta = spec.pointer("/template/metadata");
    errs.extend(super::meta::validate_labels(
        meta.and_then(|m| m.get("labels")),
        "spec.template.labels",
    ));
    errs.extend(super::meta::validate_annotations(
        meta.and_then(|m| m.get("annotations")),
        "spec.template.annotations",
    ));
    require_restart_always(spec, "StatefulSet", false, &mut errs);

    if let Some(old) = old {
        let mut new_clone = spec.clone();
        let old_spec = spec_of(old);
        if let Some(m) = new_clone.as_object_mut() {
            for field in [
                "replicas",
                "template",
                "updateStrategy",
                "minReadySeconds",
                "ordinals",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
            ] {
                match old_spec.get(field) {
                    Some(v) => m.insert(field.to_string(), v.clone()),
                    None => m.remove(field),
                };
            }
        }
        if new_clone != *old_spec {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    errs
}

pub(super) fn validate_daemon_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    let sel = spec.get("selector").filter(|s| !s.is_null());
    if let Some(sel) = sel {
        errs.extend(validate_label_selector(sel, "spec.selector"));
    }
    if let Ok(selector) = LabelSelector::from_label_selector(sel.unwrap_or(&Value::Null)) {
        if !selector.matches(labels_of(spec.get("template"))) {
            let labels = spec.pointer("/template/metadata/labels");
            errs.push(
                FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels.cloned().unwrap_or(Value::Null),
                    SELECTOR_MISMATCH,
                )
                .rendered(fmt_go::string_map(labels)),
            );
        }
    }
    if let Some(sel) = sel {
        let n = sel
            .get("matchLabels")
            .and_then(Value::as_object)
            .map_or(0, Map::len)
            + sel
                .get("matchExpressions")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
        if n == 0 {
            errs.push(
                FieldError::invalid(
                    "spec.selector",
                    sel.clone(),
                    "empty selector is invalid for daemonset",
                )
                .rendered(fmt_go::label_selector(Some(sel))),
            );
        }
    }
    errs.extend(validate_pod_template_spec(
        spec.get("template"),
        "spec.template",
        &[],
    ));
    require_restart_always(spec, "DaemonSet", true, &mut errs);
    non_negative(spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    let strategy = spec.get("updateStrategy");
    match strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(ru) = strategy
                .and_then(|s| s.get("rollingUpdate"))
                .filter(|r| !r.is_null())
            {
                let p = "spec.updateStrategy.rollingUpdate";
                validate_int_or_percent(
                    ru.get("maxUnavailable"),
                    &child(p, "maxUnavailable"),
                    &mut errs,
                );
                validate_int_or_percent(ru.get("maxSurge"), &child(p, "maxSurge"), &mut errs);
                let surge = int_or_percent_value(ru.get("maxSurge"));
                let unavailable = int_or_percent_value(ru.get("maxUnavailable"));
                if surge == 0 && unavailable == 0 {
                    let v = ru.get("maxUnavailable").cloned().unwrap_or(Value::from(0));
                    errs.push(
                        FieldError::invalid(
                            &child(p, "maxUnavailable"),
                            v.clone(),
                            "may not be 0 when `maxSurge` is 0",
                        )
                        .rendered(fmt_go::int_or_string(&v)),
                    );
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            Value::from(other),
            &["OnDelete", "RollingUpdate"],
        )),
    }
    selector_immutable(obj, old, &mut errs);
    errs
}

/// `ValidateJobSpec` at `path` (`spec` or `spec.jobTemplate.spec`).
fn validate_job_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
    ] {
        non_negative(spec, &format!("/{field}"), &child(path, field), errs);
    }
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        errs.extend(validate_label_selector(sel, &child(path, "selector")));
        if let Ok(selector) = LabelSelector::from_label_selector(sel) {
            if !selector.matches(labels_of(spec.get("template"))) {
                let labels = spec.pointer("/template/metadata/labels");
                errs.push(
                    FieldError::invalid(
                        &child(path, "template.metadata.labels"),
                        labels.cloned().unwrap_or(Value::Null),
                        SELECTOR_MISMATCH,
                    )
                    .rendered(fmt_go::string_map(labels)),
                );
            }
        }
    }
    match spec.get("completionMode").and_then(Value::as_str) {
        None | Some("NonIndexed") | Some("Indexed") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &child(path, "completionMode"),
            Value::from(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    errs.extend(validate_pod_template_spec(
        spec.get("template"),
        &child(path, "template"),
        &[],
    ));
    let policy = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if policy != "OnFailure" && policy != "Never" {
        // Upstream reports this as Required even when the value is "Always".
        errs.push(FieldError::required(
            &child(path, "template.spec.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        ));
    }
}

pub(super) fn validate_job(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // Generated on create by `defaults::generate_job_selector` unless manual.
    if obj.pointer("/spec/selector").is_none_or(Value::is_null) {
        errs.push(FieldError::required("spec.selector", ""));
    }
    validate_job_spec(spec_of(obj), "spec", &mut errs);
    if let Some(old) = old {
        selector_immutable(obj, Some(old), &mut errs);
        for field in ["completionMode", "podFailurePolicy"] {
            let new = obj.pointer(&format!("/spec/{field}"));
            if new != old.pointer(&format!("/spec/{field}")) {
                errs.push(FieldError::invalid(
                    &format!("spec.{field}"),
                    new.cloned().unwrap_or(Value::Null),
                    FIELD_IMMUTABLE,
                ));
            }
        }
        let mut new_template = obj
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let old_template = old
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        // Controller-added labels are the same on both sides once created; compare the rest.
        if let Some(m) = new_template.as_object_mut() {
            m.remove("status");
        }
        if new_template != old_template {
            errs.push(
                FieldError::invalid("spec.template", new_template, FIELD_IMMUTABLE)
                    .rendered("core.PodTemplateSpec{...}"),
            );
        }
    }
    errs
}

pub(super) fn validate_cron_job(obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            Value::from(name),
            "must be no more than 52 characters",
        ));
    }
    let time_zone = spec.get("timeZone").and_then(Value::as_str);
    match spec.get("schedule").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required("spec.schedule", "")),
        schedule => {
            if let Err(msg) = crate::cron::parse(schedule) {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    Value::from(schedule),
                    msg,
                ));
            }
            if schedule.contains("TZ") && time_zone.is_some() {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    Value::from(schedule),
                    "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                ));
            }
        }
    }
    match time_zone {
        None => {}
        Some("") => errs.push(FieldError::invalid(
            "spec.timeZone",
            Value::from(""),
            "timeZone must be nil or non-empty string",
        )),
        Some(tz) if tz.eq_ignore_ascii_case("Local") => errs.push(FieldError::invalid(
            "spec.timeZone",
            Value::from(tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )),
        Some(tz) => {
            if let Err(msg) = crate::cron::parse_time_zone(tz) {
                errs.push(FieldError::invalid("spec.timeZone", Value::from(tz), msg));
            }
        }
    }
    match spec
        .get("concurrencyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            Value::from(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(
            spec,
            &format!("/{field}"),
            &format!("spec.{field}"),
            &mut errs,
        );
    }
    let null = Value::Null;
    let job_spec = spec.pointer("/jobTemplate/spec").unwrap_or(&null);
    validate_job_spec(job_spec, "spec.jobTemplate.spec", &mut errs);
    errs
}

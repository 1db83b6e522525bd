//! storage.k8s.io: StorageClass, VolumeAttributesClass, VolumeAttachment, CSINode,
//! CSIDriver. (CSIStorageCapacity has a printer upstream, but its storage uses the default
//! table convertor, so it prints NAME, CREATED AT.)

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::super::{arr_at, str_at};
use super::{age_cell, name, opt_bool, opt_str};

pub(super) fn row(kind: &str, obj: &Value, now: DateTime<Utc>) -> Option<Vec<Value>> {
    let name = name(obj);
    let age = age_cell(obj, now);
    let cells = match kind {
        "StorageClass" => {
            let annotations = obj.pointer("/metadata/annotations");
            let default = [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ]
            .iter()
            .any(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"));
            let mut display = str_at(obj, "/metadata/name").to_string();
            if default {
                display.push_str(" (default)");
            }
            vec![
                json!(display),
                json!(str_at(obj, "/provisioner")),
                json!(opt_str(obj, "/reclaimPolicy", "Delete")),
                json!(opt_str(obj, "/volumeBindingMode", "Immediate")),
                json!(opt_bool(obj, "/allowVolumeExpansion", false)),
                age,
            ]
        }
        "VolumeAttributesClass" => vec![name, json!(str_at(obj, "/driverName")), age],
        "VolumeAttachment" => vec![
            name,
            json!(str_at(obj, "/spec/attacher")),
            json!(str_at(obj, "/spec/source/persistentVolumeName")),
            json!(str_at(obj, "/spec/nodeName")),
            json!(opt_bool(obj, "/status/attached", false)),
            age,
        ],
        "CSINode" => vec![name, json!(arr_at(obj, "/spec/drivers").len()), age],
        "CSIDriver" => {
            let token_requests = match obj.pointer("/spec/tokenRequests") {
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|t| str_at(t, "/audience"))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => "<unset>".into(),
            };
            let modes: Vec<&str> = arr_at(obj, "/spec/volumeLifecycleModes")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let modes = if modes.is_empty() {
                "<none>".to_string()
            } else {
                modes.join(",")
            };
            vec![
                name,
                json!(opt_bool(obj, "/spec/attachRequired", true)),
                json!(opt_bool(obj, "/spec/podInfoOnMount", false)),
                json!(opt_bool(obj, "/spec/storageCapacity", false)),
                json!(token_requests),
                json!(opt_bool(obj, "/spec/requiresRepublish", false)),
                json!(modes),
                age,
            ]
        }
        _ => return None,
    };
    Some(cells)
}

//! Randomized histories of applies from several managers against a model of
//! structured-merge-diff's semantics, and random JSON that must never panic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use skiff_fieldmanager::{Error, FieldManager, Request, Schema, Tracked};

/// xorshift64*: deterministic, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The model: each data key's value and the appliers that own it.
#[derive(Default)]
struct Model {
    data: BTreeMap<String, String>,
    owners: BTreeMap<String, BTreeSet<String>>,
    applied: BTreeMap<String, BTreeSet<String>>,
}

fn owners_from(obj: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(data) = e["fieldsV1"]["f:data"].as_object() {
            for k in data.keys().filter_map(|k| k.strip_prefix("f:")) {
                out.entry(k.to_owned())
                    .or_default()
                    .insert(e["manager"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

#[test]
fn apply_histories_match_the_ownership_model() {
    let f = FieldManager::new(Schema::builtin("v1", "ConfigMap").unwrap(), Tracked::All);
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut model = Model::default();
        let mut live: Option<Value> = None;
        for step in 0..40 {
            let manager = format!("m{}", rng.below(3));
            let force = rng.below(4) == 0;
            let mut cfg = BTreeMap::new();
            for k in 0..5 {
                if rng.below(2) == 0 {
                    cfg.insert(format!("k{k}"), format!("v{}", rng.below(3)));
                }
            }
            // An empty `data: {}` is owned as a whole (upstream's empty-map leaf), which this
            // key-level model does not describe: every configuration sets a key.
            if cfg.is_empty() {
                cfg.insert(format!("k{}", rng.below(5)), format!("v{}", rng.below(3)));
            }
            let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": cfg.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<Map<_, _>>()});
            let conflicting: Vec<&String> = cfg
                .iter()
                .filter(|(k, v)| {
                    model.data.get(*k).is_some_and(|cur| cur != *v)
                        && model
                            .owners
                            .get(*k)
                            .is_some_and(|o| o.iter().any(|m| *m != manager))
                })
                .map(|(k, _)| k)
                .collect();
            let now = format!("2024-05-01T10:{:02}:00Z", step);
            let req = Request {
                manager: &manager,
                api_version: "v1",
                subresource: "",
                now: &now,
            };
            match f.apply(live.as_ref(), &applied, &req, force) {
                Err(Error::Conflict(c)) => {
                    assert!(!force, "seed {seed} step {step}: force never conflicts");
                    let got: BTreeSet<String> = c.paths().iter().map(|p| p.to_string()).collect();
                    let want: BTreeSet<String> =
                        conflicting.iter().map(|k| format!(".data.{k}")).collect();
                    assert_eq!(got, want, "seed {seed} step {step}");
                    continue;
                }
                Err(e) => panic!("seed {seed} step {step}: {e}"),
                Ok(out) => {
                    assert!(
                        force || conflicting.is_empty(),
                        "seed {seed} step {step}: missed conflict"
                    );
                    // Model step.
                    for (k, v) in &cfg {
                        let owners = model.owners.entry(k.clone()).or_default();
                        if model.data.get(k) != Some(v) {
                            owners.clear();
                        }
                        owners.insert(manager.clone());
                        model.data.insert(k.clone(), v.clone());
                    }
                    let before = model
                        .applied
                        .insert(manager.clone(), cfg.keys().cloned().collect());
                    for k in before.unwrap_or_default() {
                        if cfg.contains_key(&k) {
                            continue;
                        }
                        if let Some(o) = model.owners.get_mut(&k) {
                            o.remove(&manager);
                            if o.is_empty() {
                                model.owners.remove(&k);
                                model.data.remove(&k);
                            }
                        }
                    }
                    model.owners.retain(|_, o| !o.is_empty());
                    let data: BTreeMap<String, String> = out["data"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    assert_eq!(data, model.data, "seed {seed} step {step}: object");
                    assert_eq!(
                        owners_from(&out),
                        model.owners,
                        "seed {seed} step {step}: owners"
                    );
                    for k in data.keys() {
                        assert!(model.owners.contains_key(k), "every field has an owner");
                    }
                    live = Some(out);
                }
            }
        }
    }
}

fn random_json(rng: &mut Rng, depth: u32) -> Value {
    let keys = [
        "spec",
        "containers",
        "name",
        "ports",
        "containerPort",
        "protocol",
        "metadata",
        "labels",
        "env",
        "volumes",
        "status",
        "x",
    ];
    match rng.below(if depth > 4 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::from(rng.below(3) == 0),
        2 => Value::from(rng.below(5) as i64 - 2),
        3 => Value::from(1.5),
        4 => Value::from(keys[rng.below(keys.len() as u64) as usize]),
        5 | 6 => Value::Object(
            (0..rng.below(4))
                .map(|_| {
                    (
                        keys[rng.below(keys.len() as u64) as usize].to_owned(),
                        random_json(rng, depth + 1),
                    )
                })
                .collect(),
        ),
        _ => Value::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
    }
}

#[test]
fn random_objects_and_managed_fields_never_panic() {
    let schemas = [
        Schema::builtin("v1", "Pod").unwrap(),
        Schema::builtin("apps/v1", "Deployment").unwrap(),
        Schema::deduced(),
    ];
    let mut rng = Rng(7);
    for i in 0..3000 {
        let schema = schemas[i % schemas.len()].clone();
        let f = FieldManager::new(schema, Tracked::main_resource_with_status());
        let mut a = random_json(&mut rng, 0);
        let b = random_json(&mut rng, 0);
        if rng.below(3) == 0 {
            if let Value::Object(m) = &mut a {
                m.insert(
                    "metadata".into(),
                    json!({"managedFields": random_json(&mut rng, 2)}),
                );
            }
        }
        let req = Request {
            manager: "m",
            api_version: "v1",
            subresource: "",
            now: "2024-05-01T10:00:00Z",
        };
        let _ = f.update(Some(&a), b.clone(), &req);
        let _ = f.apply(Some(&a), &b, &req, rng.below(2) == 0);
        let _ = f.apply(None, &a, &req, false);
    }
}

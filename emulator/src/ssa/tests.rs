//! Unit tests of server-side apply and field management; each names the documented behaviour
//! (https://kubernetes.io/docs/reference/using-api/server-side-apply/) it checks.

use super::*;
use serde_json::json;

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-01T00:01:00Z";
const T3: &str = "2026-01-01T00:02:00Z";

fn deploy_schema() -> MergeSchema {
    MergeSchema::builtin("apps", "Deployment")
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"default","labels":{"app":"d"}},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"d"}},
            "template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"a","image":image,
                "ports":[{"containerPort":80}]}]}}}})
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

/// FieldsV1 encoding: `f:` fields, `k:{...}` items of associative lists keyed with sorted keys
/// (protocol defaulted to TCP), `.` for the item itself; apiVersion/kind/metadata.name are not
/// owned ("Field management" section).
#[test]
fn apply_creates_with_fields_v1() {
    let out = apply(
        None,
        &deployment(1, "nginx"),
        "kubectl",
        false,
        &deploy_schema(),
        T1,
    )
    .unwrap();
    let e = entry(&out, "kubectl", "Apply").unwrap();
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:metadata":{"f:labels":{"f:app":{}}},
            "f:spec":{"f:replicas":{},"f:selector":{},
                "f:template":{"f:metadata":{"f:labels":{"f:app":{}}},
                    "f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{},"f:name":{},
                        "f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}})
    );
    assert_eq!(out["spec"]["replicas"], 1);
    assert_eq!(out["metadata"]["name"], "d");
}

/// "Applying the same object twice is a no-op": the result equals the input, managedFields
/// time included.
#[test]
fn apply_is_idempotent() {
    let s = deploy_schema();
    let once = apply(None, &deployment(2, "nginx"), "kubectl", false, &s, T1).unwrap();
    let twice = apply(
        Some(&once),
        &deployment(2, "nginx"),
        "kubectl",
        false,
        &s,
        T2,
    )
    .unwrap();
    assert_eq!(once, twice);
}

/// Property-ish: apply(apply(x)) == apply(x) for many configs over many live objects.
#[test]
fn apply_apply_equals_apply_property() {
    let s = deploy_schema();
    let configs = [
        deployment(1, "a"),
        deployment(3, "b"),
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":5}}),
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","finalizers":["x","y"]},
            "spec":{"template":{"spec":{"containers":[{"name":"b","image":"z","env":[{"name":"E","value":"1"}]},{"name":"a","image":"q"}]}}}}),
    ];
    let mut live: Option<Value> = None;
    for (i, c) in configs.iter().enumerate() {
        for mgr in ["m1", "m2"] {
            let once = apply(live.as_ref(), c, mgr, true, &s, T1).unwrap();
            let twice = apply(Some(&once), c, mgr, true, &s, T2).unwrap();
            assert_eq!(once, twice, "config {i} manager {mgr}");
            live = Some(once);
        }
    }
}

/// "Conflicts": a field owned by another manager whose value changes is a conflict naming the
/// manager and the field, e.g. `.spec.replicas`; the message is kube-apiserver's.
#[test]
fn apply_conflict_with_other_manager() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "nginx"), "alice", false, &s, T1).unwrap();
    let err = apply(Some(&live), &deployment(3, "nginx:2"), "bob", false, &s, T2).unwrap_err();
    let SsaError::Conflict { conflicts } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        conflicts,
        &[
            Conflict {
                manager: "alice".into(),
                field: ".spec.replicas".into()
            },
            Conflict {
                manager: "alice".into(),
                field: ".spec.template.spec.containers[name=\"a\"].image".into()
            },
        ]
    );
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"alice\"\n- .spec.replicas\n- .spec.template.spec.containers[name=\"a\"].image"
    );
    assert_eq!(conflicts[0].cause_message(), "conflict with \"alice\"");
}

/// "Conflicts": the same value is not a conflict — both managers share ownership.
#[test]
fn apply_same_value_shares_ownership() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "nginx"), "alice", false, &s, T1).unwrap();
    let out = apply(
        Some(&live),
        &json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1}}),
        "bob",
        false,
        &s,
        T2,
    )
    .unwrap();
    assert_eq!(
        entry(&out, "bob", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec":{"f:replicas":{}}})
    );
    assert!(entry(&out, "alice", "Apply").unwrap()["fieldsV1"]["f:spec"]["f:replicas"].is_object());
    // the object did not change
    assert_eq!(out["spec"], live["spec"]);
}

/// "Conflicts" with `force`: the value is applied and ownership moves to the applier.
#[test]
fn apply_force_takes_ownership() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "nginx"), "alice", false, &s, T1).unwrap();
    let out = apply(
        Some(&live),
        &json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":4}}),
        "bob",
        true,
        &s,
        T2,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 4);
    let alice = entry(&out, "alice", "Apply").unwrap();
    assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert!(alice["fieldsV1"]["f:spec"].get("f:selector").is_some());
    assert_eq!(entry(&out, "bob", "Apply").unwrap()["time"], T2);
}

/// Conflicts also arise with Update managers (e.g. `kubectl scale`, a controller) — "Conflicts"
/// names operations Apply and Update alike.
#[test]
fn apply_conflicts_with_update_manager() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "nginx"), "kubectl", false, &s, T1).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(Some(&live), &mut scaled, "kube-controller", None, &s, T2);
    let upd = entry(&scaled, "kube-controller", "Update").unwrap();
    assert_eq!(
        upd["fieldsV1"],
        json!({"f:spec":{"f:replicas":{}}}),
        "only what it changed"
    );
    assert_eq!(upd["time"], T2);
    // the applier lost replicas (Update never conflicts)
    assert!(
        entry(&scaled, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    // re-applying replicas 1 now conflicts with the Update manager
    let err = apply(
        Some(&scaled),
        &deployment(1, "nginx"),
        "kubectl",
        false,
        &s,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SsaError::Conflict {
            conflicts: vec![Conflict {
                manager: "kube-controller".into(),
                field: ".spec.replicas".into()
            }]
        }
    );
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kube-controller\": .spec.replicas"
    );
}

/// "Merge strategy": fields the applier no longer specifies are removed when nobody else
/// owns them (a removed container, env var and label disappear).
#[test]
fn apply_removes_fields_no_longer_specified() {
    let s = deploy_schema();
    let mut c1 = deployment(1, "nginx");
    c1["spec"]["template"]["spec"]["containers"] = json!([
        {"name":"a","image":"x","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},
        {"name":"b","image":"y"}]);
    c1["metadata"]["labels"]["extra"] = json!("1");
    let live = apply(None, &c1, "kubectl", false, &s, T1).unwrap();
    let mut c2 = c1.clone();
    c2["spec"]["template"]["spec"]["containers"] =
        json!([{"name":"a","image":"x","env":[{"name":"A","value":"1"}]}]);
    c2["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("extra");
    let out = apply(Some(&live), &c2, "kubectl", false, &s, T2).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name":"a","image":"x","env":[{"name":"A","value":"1"}]}])
    );
    assert_eq!(out["metadata"]["labels"], json!({"app":"d"}));
    assert_eq!(entry(&out, "kubectl", "Apply").unwrap()["time"], T2);
}

/// "Merge strategy": a field the applier drops but another manager owns stays (and stays
/// owned by that manager).
#[test]
fn apply_keeps_fields_owned_by_others() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "nginx"), "kubectl", false, &s, T1).unwrap();
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["team"] = json!("x");
    labelled["metadata"]["labels"]["app"] = json!("d");
    record_update(Some(&live), &mut labelled, "kubectl-label", None, &s, T2);
    // also take shared ownership of replicas by a second applier
    let shared = apply(
        Some(&labelled),
        &json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1}}),
        "other",
        false,
        &s,
        T2,
    )
    .unwrap();
    let cfg = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},
            "spec":{"containers":[{"name":"a","image":"nginx","ports":[{"containerPort":80}]}]}}}});
    let out = apply(Some(&shared), &cfg, "kubectl", false, &s, T3).unwrap();
    assert_eq!(out["spec"]["replicas"], 1, "owned by 'other'");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"team":"x"}),
        "app label was kubectl's only"
    );
}

/// "Merge strategy": associative lists merge by key (items of other managers kept), atomic
/// lists (`args`, `tolerations`) are replaced, granular maps merge.
#[test]
fn apply_merge_strategies() {
    let s = MergeSchema::builtin("", "Pod");
    let pod = |containers: Value, tol: Value| json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":containers,"tolerations":tol}});
    let live = apply(
        None,
        &pod(
            json!([{"name":"a","image":"x","args":["1","2"]}]),
            json!([{"key":"k1"}]),
        ),
        "m1",
        false,
        &s,
        T1,
    )
    .unwrap();
    let out = apply(
        Some(&live),
        &json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"b","image":"y"}]}}),
        "m2",
        false,
        &s,
        T2,
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name":"a","image":"x","args":["1","2"]},{"name":"b","image":"y"}])
    );
    let out2 = apply(
        Some(&out),
        &pod(
            json!([{"name":"a","image":"x","args":["3"]}]),
            json!([{"key":"k2"}]),
        ),
        "m1",
        false,
        &s,
        T3,
    )
    .unwrap();
    assert_eq!(out2["spec"]["tolerations"], json!([{"key":"k2"}]));
    assert_eq!(out2["spec"]["containers"][0]["args"], json!(["3"]));
    assert_eq!(out2["spec"]["containers"][1]["name"], "b");
}

/// Sets (`listType=set`, e.g. finalizers) are owned per value as `v:<json>`.
#[test]
fn apply_set_items() {
    let s = MergeSchema::builtin("", "ConfigMap");
    let cm = |f: Value| json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","finalizers":f},"data":{"a":"1"}});
    let live = apply(None, &cm(json!(["x"])), "m1", false, &s, T1).unwrap();
    let out = apply(Some(&live), &cm(json!(["y"])), "m2", false, &s, T2).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
    assert_eq!(
        entry(&out, "m2", "Apply").unwrap()["fieldsV1"],
        json!({"f:data":{"f:a":{}},"f:metadata":{"f:finalizers":{"v:\"y\"":{}}}})
    );
    // m1 drops x: removed (only m1 owned it)
    let out = apply(Some(&out), &cm(json!([])), "m1", false, &s, T3).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
}

/// CRD schemas: x-kubernetes-list-type map with x-kubernetes-list-map-keys, atomic maps
/// (x-kubernetes-map-type: atomic) owned as a whole; lists without annotation are atomic.
#[test]
fn apply_with_crd_schema() {
    let schema = json!({"type":"object","properties":{"spec":{"type":"object","properties":{
        "ports":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
            "items":{"type":"object","properties":{"name":{"type":"string"},"port":{"type":"integer"}}}},
        "sel":{"type":"object","x-kubernetes-map-type":"atomic","additionalProperties":{"type":"string"}},
        "tags":{"type":"array","items":{"type":"string"}}}}}});
    let s = MergeSchema::from_openapi(&schema);
    let cfg = json!({"apiVersion":"tycho.dev/v1alpha1","kind":"System","metadata":{"name":"s"},
        "spec":{"ports":[{"name":"http","port":80}],"sel":{"a":"1"},"tags":["x"]}});
    let out = apply(None, &cfg, "kubectl", false, &s, T1).unwrap();
    assert_eq!(
        entry(&out, "kubectl", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec":{"f:ports":{"k:{\"name\":\"http\"}":{".":{},"f:name":{},"f:port":{}}},"f:sel":{},"f:tags":{}}})
    );
}

/// Conflict paths for multi-key items: `[containerPort=80,protocol="TCP"]`.
#[test]
fn conflict_path_with_two_keys() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "nginx"), "alice", false, &s, T1).unwrap();
    let mut cfg = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"template":{"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"web"}]}]}}}});
    let out = apply(Some(&live), &cfg, "bob", false, &s, T2).unwrap();
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = json!("www");
    let _ = out;
    let live2 = apply(Some(&live), &cfg, "bob", false, &s, T2).unwrap();
    let err = apply(
        Some(&live2),
        &deployment_with_port_name(),
        "alice",
        false,
        &s,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SsaError::Conflict {
            conflicts: vec![Conflict {
                manager: "bob".into(),
                field: ".spec.template.spec.containers[name=\"a\"].ports[containerPort=80,protocol=\"TCP\"].name".into()
            }]
        }
    );
}

fn deployment_with_port_name() -> Value {
    let mut d = deployment(1, "nginx");
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = json!("other");
    d
}

/// Invalid apply configurations: managedFields set, duplicate keys, missing key field.
#[test]
fn apply_invalid_configs() {
    let s = deploy_schema();
    let mut c = deployment(1, "x");
    c["metadata"]["managedFields"] = json!([]);
    assert!(matches!(
        apply(None, &c, "m", false, &s, T1),
        Err(SsaError::Invalid(_))
    ));
    let mut c = deployment(1, "x");
    c["spec"]["template"]["spec"]["containers"] = json!([{"name":"a"},{"name":"a"}]);
    assert!(matches!(
        apply(None, &c, "m", false, &s, T1),
        Err(SsaError::Invalid(_))
    ));
    let mut c = deployment(1, "x");
    c["spec"]["template"]["spec"]["containers"] = json!([{"image":"a"}]);
    let e = apply(None, &c, "m", false, &s, T1).unwrap_err();
    assert!(e.to_string().contains("omits key field \"name\""), "{e}");
    assert!(matches!(
        apply(None, &json!([1]), "m", false, &s, T1),
        Err(SsaError::Invalid(_))
    ));
}

/// Update: on create the manager owns every field it set; later updates add what they
/// change; an update that changes nothing keeps the time; removed fields leave all sets.
#[test]
fn record_update_ownership_and_time() {
    let s = MergeSchema::builtin("", "ConfigMap");
    let mut created = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","uid":"u","resourceVersion":"1"},"data":{"a":"1","b":"2"}});
    record_update(None, &mut created, "kubectl-create", None, &s, T1);
    let e = entry(&created, "kubectl-create", "Update").unwrap();
    // a map that appeared is itself owned (`.`), as kube-apiserver records Update managers
    assert_eq!(e["fieldsV1"], json!({"f:data":{".":{},"f:a":{},"f:b":{}}}));
    assert_eq!(e["apiVersion"], "v1");
    // unchanged update keeps the time
    let mut same = created.clone();
    record_update(Some(&created), &mut same, "kubectl-create", None, &s, T2);
    assert_eq!(same, created);
    // another manager edits b and removes a
    let mut edited = created.clone();
    edited["data"] = json!({"b":"3"});
    record_update(Some(&created), &mut edited, "editor", None, &s, T3);
    assert_eq!(
        entry(&edited, "kubectl-create", "Update").unwrap()["fieldsV1"],
        json!({"f:data":{}}),
        "keeps the map itself; lost a (removed) and b (changed by editor)"
    );
    let ed = entry(&edited, "editor", "Update").unwrap();
    assert_eq!(ed["fieldsV1"], json!({"f:data":{"f:b":{}}}));
    assert_eq!(ed["time"], T3);
}

/// Update through a subresource records `subresource: status` as a separate manager.
#[test]
fn record_update_subresource() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "x"), "kubectl", false, &s, T1).unwrap();
    let mut st = live.clone();
    st["status"] = json!({"replicas":1});
    record_update(
        Some(&live),
        &mut st,
        "kube-controller-manager",
        Some("status"),
        &s,
        T2,
    );
    let e = entry(&st, "kube-controller-manager", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status":{".":{},"f:replicas":{}}}));
    // entries are sorted: Apply before Update
    assert_eq!(st["metadata"]["managedFields"][0]["operation"], "Apply");
}

/// Clients may replace managedFields (kubectl's CSA→SSA migration JSON patch); `[{}]` resets
/// them ("Clearing managedFields").
#[test]
fn record_update_client_managed_fields() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "x"), "kubectl", false, &s, T1).unwrap();
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&live), &mut reset, "kubectl", None, &s, T2);
    assert!(reset["metadata"].get("managedFields").is_none());
    let mut replaced = live.clone();
    replaced["metadata"]["managedFields"] = json!([{"manager":"migrated","operation":"Apply","apiVersion":"apps/v1",
        "time":T1,"fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:replicas":{}}}}]);
    record_update(Some(&live), &mut replaced, "kubectl", None, &s, T2);
    assert_eq!(
        replaced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        replaced["metadata"]["managedFields"][0]["manager"],
        "migrated"
    );
}

/// Apply on the status subresource manages status fields under `subresource: status`.
#[test]
fn apply_status_subresource() {
    let s = deploy_schema();
    let live = apply(None, &deployment(1, "x"), "kubectl", false, &s, T1).unwrap();
    let out = apply_subresource(
        Some(&live),
        &json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"status":{"readyReplicas":1}}),
        "ctrl",
        Some("status"),
        false,
        &s,
        T2,
    )
    .unwrap();
    let e = entry(&out, "ctrl", "Apply").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status":{"f:readyReplicas":{}}}));
    assert_eq!(out["spec"], live["spec"]);
}

/// FieldsV1 round trip and path rendering.
#[test]
fn fields_v1_round_trip() {
    let v = json!({"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},"f:x":{}},
        "f:metadata":{"f:finalizers":{"v:\"a\"":{}}}});
    let s = FieldSet::from_fields_v1(&v);
    assert_eq!(s.to_fields_v1(), v);
    let paths: Vec<String> = s.members().iter().map(|p| path_string(p)).collect();
    assert_eq!(
        paths,
        [
            ".metadata.finalizers[=\"a\"]",
            ".spec.ports[port=80,protocol=\"TCP\"]",
            ".spec.ports[port=80,protocol=\"TCP\"].port",
            ".spec.x",
        ]
    );
}

/// Entries whose set becomes empty are dropped ("managedFields ... entries with empty field
/// sets are removed").
#[test]
fn empty_entries_are_dropped() {
    let s = MergeSchema::builtin("", "ConfigMap");
    let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"}});
    let live = apply(None, &cm, "m1", false, &s, T1).unwrap();
    let out = apply(
        Some(&live),
        &json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"2"}}),
        "m2",
        true,
        &s,
        T2,
    )
    .unwrap();
    assert!(entry(&out, "m1", "Apply").is_none());
    assert_eq!(
        out["metadata"]["managedFields"].as_array().unwrap().len(),
        1
    );
}

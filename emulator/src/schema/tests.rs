//! Unit tests of custom resource validation; each names the documented behaviour it checks.

use super::*;
use serde_json::json;

fn crd_schema(spec: Value) -> Value {
    json!({"type":"object","properties":{
        "apiVersion":{"type":"string"},"kind":{"type":"string"},"metadata":{"type":"object"},
        "spec": spec,
        "status":{"type":"object","properties":{"ready":{"type":"boolean"}}}}})
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion":"tycho.dev/v1alpha1","kind":"System","metadata":{"name":"x"},"spec":spec})
}

fn errors(schema: &Value, o: Value) -> Vec<String> {
    match validate_custom_resource(schema, o, None, UnknownFields::Ignore) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// CRD docs "Field pruning": fields not in the schema are dropped; `Warn` reports
/// `unknown field "spec.foo"`; apiVersion/kind/metadata are kept.
#[test]
fn prunes_unknown_fields_and_warns() {
    let s = crd_schema(json!({"type":"object","properties":{"a":{"type":"string"},
        "items":{"type":"array","items":{"type":"object","properties":{"n":{"type":"string"}}}}}}));
    let v = validate_custom_resource(
        &s,
        obj(json!({"a":"x","foo":1,"items":[{"n":"a","bar":2}]})),
        None,
        UnknownFields::Warn,
    )
    .unwrap();
    assert_eq!(v.object["spec"], json!({"a":"x","items":[{"n":"a"}]}));
    assert_eq!(v.object["metadata"], json!({"name":"x"}));
    assert_eq!(
        v.warnings,
        [
            "unknown field \"spec.foo\"",
            "unknown field \"spec.items[0].bar\""
        ]
    );
}

/// Strict field validation rejects unknown fields: 400 `strict decoding error: unknown field
/// "spec.foo"` (API concepts, "Field validation").
#[test]
fn strict_rejects_unknown_fields() {
    let s = crd_schema(json!({"type":"object","properties":{"a":{"type":"string"}}}));
    let e = validate_custom_resource(&s, obj(json!({"foo":1})), None, UnknownFields::Strict)
        .unwrap_err();
    assert_eq!(e[0].reason, FieldErrorReason::UnknownField);
    assert_eq!(
        strict_decoding_message(&e).unwrap(),
        "strict decoding error: unknown field \"spec.foo\""
    );
    // Ignore drops silently.
    let v =
        validate_custom_resource(&s, obj(json!({"foo":1})), None, UnknownFields::Ignore).unwrap();
    assert!(v.warnings.is_empty());
    assert_eq!(v.object["spec"], json!({}));
}

/// CRD docs "Controlling pruning": `x-kubernetes-preserve-unknown-fields: true` keeps unknown
/// fields, while known fields below are still pruned/validated.
#[test]
fn preserve_unknown_fields() {
    let s = crd_schema(
        json!({"type":"object","x-kubernetes-preserve-unknown-fields":true,
        "properties":{"known":{"type":"object","properties":{"a":{"type":"integer"}}}}}),
    );
    let v = validate_custom_resource(
        &s,
        obj(json!({"anything":{"x":[1]},"known":{"a":1,"b":2}})),
        None,
        UnknownFields::Strict,
    );
    // known.b is unknown below a non-preserving node
    let e = v.unwrap_err();
    assert_eq!(e[0].message, "unknown field \"spec.known.b\"");
    let v = validate_custom_resource(
        &s,
        obj(json!({"anything":{"x":[1]},"known":{"a":1}})),
        None,
        UnknownFields::Strict,
    )
    .unwrap();
    assert_eq!(v.object["spec"]["anything"], json!({"x":[1]}));
}

/// CRD docs "Defaulting": defaults fill missing fields, apply inside array items and map
/// values, and inside defaulted objects; a `null` of a non-nullable field is defaulted.
#[test]
fn defaults_applied_recursively() {
    let s = crd_schema(json!({"type":"object","properties":{
        "replicas":{"type":"integer","default":1},
        "strategy":{"type":"object","default":{},"properties":{"type":{"type":"string","default":"Rolling"}}},
        "ports":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"protocol":{"type":"string","default":"TCP"}}}},
        "byName":{"type":"object","additionalProperties":{"type":"object","properties":{"w":{"type":"integer","default":5}}}},
        "image":{"type":"string","default":"nginx"}}}));
    let v = validate_custom_resource(
        &s,
        obj(json!({"ports":[{"name":"a"}],"byName":{"x":{}},"image":null})),
        None,
        UnknownFields::Ignore,
    )
    .unwrap();
    assert_eq!(
        v.object["spec"],
        json!({"replicas":1,"strategy":{"type":"Rolling"},"ports":[{"name":"a","protocol":"TCP"}],
            "byName":{"x":{"w":5}},"image":"nginx"})
    );
}

/// CRD docs "Defaulting and Nullable": non-nullable nulls without default are pruned; with
/// `nullable: true` the null is kept and not defaulted.
#[test]
fn nullable_and_null_pruning() {
    let s = crd_schema(json!({"type":"object","properties":{
        "a":{"type":"string"},
        "b":{"type":"string","nullable":true,"default":"d"}}}));
    let v = validate_custom_resource(
        &s,
        obj(json!({"a":null,"b":null})),
        None,
        UnknownFields::Ignore,
    )
    .unwrap();
    assert_eq!(v.object["spec"], json!({"b":null}));
}

/// OpenAPI `required` → `spec.name: Required value` (kube-openapi RequiredFailCode → field.Required).
#[test]
fn required_value() {
    let s = crd_schema(
        json!({"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}),
    );
    assert_eq!(errors(&s, obj(json!({}))), ["spec.name: Required value"]);
    let s2 = json!({"type":"object","required":["spec"],"properties":{"spec":{"type":"object"}}});
    assert_eq!(
        errors(&s2, json!({"apiVersion":"a/v1","kind":"K","metadata":{}})),
        ["spec: Required value"]
    );
}

/// Wrong types → `Invalid value: "string": spec.replicas in body must be of type integer: "string"`
/// (kube-openapi InvalidTypeCode → field.TypeInvalid).
#[test]
fn type_invalid() {
    let s = crd_schema(
        json!({"type":"object","properties":{"replicas":{"type":"integer"},
        "ratio":{"type":"number"},"on":{"type":"boolean"},"l":{"type":"array","items":{"type":"string"}}}}),
    );
    let e = validate_custom_resource(
        &s,
        obj(json!({"replicas":"3","ratio":2,"on":true,"l":["a",1]})),
        None,
        UnknownFields::Ignore,
    )
    .unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].reason, FieldErrorReason::TypeInvalid);
    assert_eq!(
        e[0].to_string(),
        "spec.l[1]: Invalid value: \"integer\": spec.l[1] in body must be of type string: \"integer\""
    );
    assert_eq!(
        e[1].to_string(),
        "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
    );
    // 2.0 is an integer for OpenAPI (JSON has one number type)
    assert!(errors(&s, obj(json!({"replicas":2.0}))).is_empty());
}

/// `enum` → `Unsupported value: "X": supported values: "A", "B"` (field.NotSupported).
#[test]
fn enum_not_supported() {
    let s = crd_schema(
        json!({"type":"object","properties":{"mode":{"type":"string","enum":["A","B"]},
        "n":{"type":"integer","enum":[1,2]}}}),
    );
    let e = validate_custom_resource(
        &s,
        obj(json!({"mode":"X","n":3})),
        None,
        UnknownFields::Ignore,
    )
    .unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "spec.mode: Unsupported value: \"X\": supported values: \"A\", \"B\""
    );
    assert_eq!(e[0].reason.as_str(), "FieldValueNotSupported");
    assert_eq!(
        e[1].to_string(),
        "spec.n: Unsupported value: 3: supported values: \"1\", \"2\""
    );
}

/// `pattern` → `Invalid value: "Bad_Name": spec.containers[0].name in body should match '...'`.
#[test]
fn pattern_invalid() {
    let s = crd_schema(
        json!({"type":"object","properties":{"containers":{"type":"array","items":{
        "type":"object","properties":{"name":{"type":"string","pattern":"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}}}}}}),
    );
    assert_eq!(
        errors(
            &s,
            obj(json!({"containers":[{"name":"ok-1"},{"name":"Bad_Name"}]}))
        ),
        [
            "spec.containers[1].name: Invalid value: \"Bad_Name\": spec.containers[1].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
        ]
    );
}

/// `maximum`/`minimum`/exclusive/multipleOf (kube-openapi messages, field.Invalid).
#[test]
fn numeric_bounds() {
    let s = crd_schema(json!({"type":"object","properties":{
        "port":{"type":"integer","minimum":1,"maximum":65535},
        "x":{"type":"number","minimum":0,"exclusiveMinimum":true,"maximum":1,"exclusiveMaximum":true},
        "m":{"type":"integer","multipleOf":5}}}));
    assert_eq!(
        errors(&s, obj(json!({"port":70000,"x":1,"m":7}))),
        [
            "spec.m: Invalid value: 7: spec.m in body should be a multiple of 5",
            "spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535",
            "spec.x: Invalid value: 1: spec.x in body should be less than 1",
        ]
    );
    assert_eq!(
        errors(&s, obj(json!({"port":0,"x":0}))),
        [
            "spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1",
            "spec.x: Invalid value: 0: spec.x in body should be greater than 0",
        ]
    );
}

/// `maxLength` → `Too long: may not be more than 63 bytes`; `minLength` → Invalid;
/// `maxItems` → `Too many: 17: must have at most 16 items`; `minItems` → Invalid;
/// `maxProperties` → Too many.
#[test]
fn lengths_and_counts() {
    let s = crd_schema(json!({"type":"object","properties":{
        "name":{"type":"string","maxLength":63},
        "short":{"type":"string","minLength":2},
        "ports":{"type":"array","maxItems":16,"items":{"type":"integer"}},
        "few":{"type":"array","minItems":1,"items":{"type":"integer"}},
        "labels":{"type":"object","maxProperties":1,"additionalProperties":{"type":"string"}}}}));
    let e = validate_custom_resource(
        &s,
        obj(
            json!({"name":"a".repeat(64),"short":"a","ports":(0..17).collect::<Vec<_>>(),"few":[],
            "labels":{"a":"1","b":"2"}}),
        ),
        None,
        UnknownFields::Ignore,
    )
    .unwrap_err();
    let msgs: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "spec.few: Invalid value: 0: spec.few in body should have at least 1 items",
            "spec.labels: Too many: 2: must have at most 1 item",
            "spec.name: Too long: may not be more than 63 bytes",
            "spec.ports: Too many: 17: must have at most 16 items",
            "spec.short: Invalid value: \"a\": spec.short in body should be at least 2 chars long",
        ]
    );
    assert_eq!(e[2].reason.as_str(), "FieldValueTooLong");
    assert_eq!(e[3].reason.as_str(), "FieldValueTooMany");
}

/// `x-kubernetes-int-or-string` accepts integers and strings only; formats byte, date-time,
/// int32 are checked (CRD docs "IntOrString", OpenAPI formats).
#[test]
fn int_or_string_and_formats() {
    let s = crd_schema(json!({"type":"object","properties":{
        "port":{"x-kubernetes-int-or-string":true,"anyOf":[{"type":"integer"},{"type":"string"}]},
        "data":{"type":"string","format":"byte"},
        "at":{"type":"string","format":"date-time"},
        "n":{"type":"integer","format":"int32"}}}));
    assert!(
        errors(
            &s,
            obj(json!({"port":80,"data":"aGVsbG8=","at":"2024-01-02T03:04:05Z","n":5}))
        )
        .is_empty()
    );
    assert!(errors(&s, obj(json!({"port":"http"}))).is_empty());
    let e = errors(
        &s,
        obj(json!({"port":true,"data":"!!","at":"yesterday","n":3000000000u64})),
    );
    assert_eq!(
        e,
        [
            "spec.at: Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\"",
            "spec.data: Invalid value: \"!!\": spec.data in body must be of type byte: \"!!\"",
            "spec.n: Invalid value: 3000000000: spec.n in body must be of type int32: \"3000000000\"",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
        ]
    );
}

/// list-type set/map: duplicates are `Duplicate value`, missing map keys `Required value`
/// (structurallisttype.ValidateListSetsAndMaps).
#[test]
fn list_type_uniqueness() {
    let s = crd_schema(json!({"type":"object","properties":{
        "tags":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}},
        "ports":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
            "items":{"type":"object","properties":{"name":{"type":"string"},"port":{"type":"integer"}}}}}}));
    assert_eq!(
        errors(
            &s,
            obj(
                json!({"tags":["a","b","a"],"ports":[{"name":"a","port":1},{"name":"a","port":2},{"port":3}]})
            )
        ),
        [
            "spec.ports[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}",
            "spec.ports[2].name: Required value",
            "spec.tags[2]: Duplicate value: \"a\"",
        ]
    );
}

/// `x-kubernetes-embedded-resource`: apiVersion/kind/metadata kept and apiVersion/kind required.
#[test]
fn embedded_resource() {
    let s = crd_schema(
        json!({"type":"object","properties":{"template":{"type":"object",
        "x-kubernetes-embedded-resource":true,"x-kubernetes-preserve-unknown-fields":true}}}),
    );
    assert_eq!(
        errors(
            &s,
            obj(json!({"template":{"metadata":{"name":"a"},"spec":{}}}))
        ),
        [
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty",
        ]
    );
    assert!(
        errors(
            &s,
            obj(json!({"template":{"apiVersion":"v1","kind":"Pod","spec":{"x":1}}}))
        )
        .is_empty()
    );
}

/// CEL rules (x-kubernetes-validations): a false rule reports its message at the rule's
/// field path as `Invalid value: "object": <message>` (Kubernetes CEL docs).
#[test]
fn cel_rule_message_and_path() {
    let s = crd_schema(
        json!({"type":"object","properties":{"replicas":{"type":"integer"},
        "maxReplicas":{"type":"integer"}},
        "x-kubernetes-validations":[{"rule":"self.replicas <= self.maxReplicas","message":"replicas must not exceed maxReplicas"}]}),
    );
    assert_eq!(
        errors(&s, obj(json!({"replicas":5,"maxReplicas":3}))),
        ["spec: Invalid value: \"object\": replicas must not exceed maxReplicas"]
    );
    assert!(errors(&s, obj(json!({"replicas":2,"maxReplicas":3}))).is_empty());
}

/// CEL `fieldPath` and `reason` (CEL docs: "fieldPath", "reason": FieldValueForbidden →
/// `Forbidden`), default message `failed rule: <rule>`, rules on nested scalars.
#[test]
fn cel_field_path_reason_and_default_message() {
    let s = crd_schema(json!({"type":"object","properties":{
        "a":{"type":"string","x-kubernetes-validations":[{"rule":"self.startsWith('x')"}]},
        "b":{"type":"integer"}},
        "x-kubernetes-validations":[{"rule":"!has(self.b) || self.b > 0","fieldPath":".b","reason":"FieldValueForbidden","message":"b must be positive"}]}));
    let e = validate_custom_resource(
        &s,
        obj(json!({"a":"y","b":-1})),
        None,
        UnknownFields::Ignore,
    )
    .unwrap_err();
    let msgs: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "spec.a: Invalid value: \"string\": failed rule: self.startsWith('x')",
            "spec.b: Forbidden: b must be positive",
        ]
    );
    assert_eq!(e[1].reason, FieldErrorReason::Forbidden);
}

/// CEL rules see defaulted values (defaulting runs before validation).
#[test]
fn cel_sees_defaults() {
    let s = crd_schema(
        json!({"type":"object","properties":{"replicas":{"type":"integer","default":3}},
        "x-kubernetes-validations":[{"rule":"self.replicas == 3","message":"want 3"}]}),
    );
    assert!(errors(&s, obj(json!({}))).is_empty());
}

/// Transition rules (`oldSelf`) run on update only, with the old value correlated by key for
/// listType=map items (CEL docs "Transition rules").
#[test]
fn cel_transition_rules() {
    let s = crd_schema(json!({"type":"object","properties":{
        "size":{"type":"integer","x-kubernetes-validations":[{"rule":"self >= oldSelf","message":"size may not shrink"}]},
        "vols":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
            "items":{"type":"object","required":["name"],"properties":{"name":{"type":"string"},
                "class":{"type":"string","x-kubernetes-validations":[{"rule":"self == oldSelf","message":"class is immutable"}]}}}}}}));
    // create: no oldSelf, rules skipped
    assert!(errors(&s, obj(json!({"size":1,"vols":[{"name":"a","class":"x"}]}))).is_empty());
    let old = obj(json!({"size":5,"vols":[{"name":"b","class":"y"},{"name":"a","class":"x"}]}));
    let e = validate_custom_resource(
        &s,
        obj(json!({"size":4,"vols":[{"name":"a","class":"z"},{"name":"c","class":"q"}]})),
        Some(&old),
        UnknownFields::Ignore,
    )
    .unwrap_err();
    let msgs: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "spec.size: Invalid value: \"integer\": size may not shrink",
            "spec.vols[0].class: Invalid value: \"string\": class is immutable",
        ]
    );
}

/// CRD validation ratcheting (on by default since 1.30): an update that leaves an invalid
/// value unchanged is accepted; changing it is validated.
#[test]
fn ratcheting_unchanged_values() {
    let s = crd_schema(
        json!({"type":"object","properties":{"name":{"type":"string","maxLength":3},"n":{"type":"integer"}}}),
    );
    let old = obj(json!({"name":"toolong","n":1}));
    assert!(
        validate_custom_resource(
            &s,
            obj(json!({"name":"toolong","n":2})),
            Some(&old),
            UnknownFields::Ignore
        )
        .is_ok()
    );
    assert!(
        validate_custom_resource(
            &s,
            obj(json!({"name":"toolong2","n":2})),
            Some(&old),
            UnknownFields::Ignore
        )
        .is_err()
    );
}

/// Root-level rules report at the root (`<nil>`), and messageExpression is evaluated.
#[test]
fn cel_root_rule_and_message_expression() {
    let s = json!({"type":"object","properties":{"spec":{"type":"object","properties":{"n":{"type":"integer"}}}},
        "x-kubernetes-validations":[{"rule":"self.metadata.name.startsWith('t')","messageExpression":"'name ' + self.metadata.name + ' must start with t'"}]});
    assert_eq!(
        errors(&s, obj(json!({"n":1}))),
        ["<nil>: Invalid value: \"object\": name x must start with t"]
    );
}

/// anyOf/oneOf/not/allOf value validations (structural schemas allow them in junctors).
#[test]
fn junctors() {
    let s = crd_schema(json!({"type":"object","properties":{
        "a":{"type":"integer","anyOf":[{"minimum":10},{"maximum":0}]},
        "b":{"type":"string","not":{"enum":["x"]}},
        "c":{"type":"integer","allOf":[{"minimum":1},{"maximum":3}]}}}));
    assert_eq!(
        errors(&s, obj(json!({"a":5,"b":"x","c":4}))),
        [
            "spec.a: Invalid value: 5: spec.a in body must validate at least one schema (anyOf)",
            "spec.b: Invalid value: \"x\": spec.b in body must not validate the schema (not)",
            "spec.c: Invalid value: 4: spec.c in body should be less than or equal to 3",
        ]
    );
}

fn crd(schema: Value) -> Value {
    json!({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
        "metadata":{"name":"systems.tycho.dev"},
        "spec":{"group":"tycho.dev","names":{"kind":"System","plural":"systems"},"scope":"Namespaced",
            "versions":[{"name":"v1alpha1","served":true,"storage":true,"schema":{"openAPIV3Schema":schema}}]}})
}

/// A valid structural schema with CEL rules is accepted.
#[test]
fn crd_schema_valid() {
    let s = crd_schema(
        json!({"type":"object","properties":{"n":{"type":"integer","default":1},
        "ports":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
            "items":{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}},
        "port":{"x-kubernetes-int-or-string":true}},
        "x-kubernetes-validations":[{"rule":"self.n >= 0","message":"m"}]}),
    );
    validate_crd_schema(&crd(s)).unwrap();
}

/// Structural schema rules (KEP-1002): a property without type, array without items,
/// uniqueItems, properties+additionalProperties, bad list-map keys, invalid default, invalid
/// pattern.
#[test]
fn crd_schema_structural_errors() {
    let s = crd_schema(json!({"type":"object","properties":{
        "notype":{"properties":{"a":{"type":"string"}}},
        "arr":{"type":"array"},
        "u":{"type":"array","uniqueItems":true,"items":{"type":"string"}},
        "both":{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}},
        "lm":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["k"],
            "items":{"type":"object","properties":{"k":{"type":"string"}}}},
        "d":{"type":"integer","maximum":3,"default":5},
        "weird":{"type":"strin"},
        "re":{"type":"string","pattern":"([a-z"}}}));
    let e: Vec<String> = validate_crd_schema(&crd(s))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let base = "spec.validation.openAPIV3Schema.properties[spec]";
    for want in [
        format!(
            "{base}.properties[notype].type: Required value: must not be empty for specified object fields"
        ),
        format!("{base}.properties[arr].items: Required value: must be specified"),
        format!(
            "{base}.properties[u].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        ),
        format!(
            "{base}.properties[both].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ),
        format!(
            "{base}.properties[lm].items.properties[k]: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
        ),
        format!(
            "{base}.properties[d].default: Invalid value: 5: {base}.properties[d].default in body should be less than or equal to 3"
        ),
        format!(
            "{base}.properties[re].pattern: Invalid value: \"([a-z\": must be a valid regular expression, but isn't"
        ),
        format!(
            "{base}.properties[weird].type: Unsupported value: \"strin\": supported values: \"object\", \"array\", \"string\", \"integer\", \"number\", \"boolean\""
        ),
    ] {
        assert!(
            e.iter().any(|x| x.starts_with(&want)),
            "missing {want}\nin {e:#?}"
        );
    }
}

/// CEL rules must compile (macro variables are fine), and use oldSelf only where the
/// old value can be correlated (CEL docs, "Validation rules" / "Transition rules").
#[test]
fn crd_schema_cel_errors() {
    let s = crd_schema(json!({"type":"object","properties":{
        "tags":{"type":"array","maxItems":8,"items":{"type":"string","maxLength":16,"x-kubernetes-validations":[{"rule":"self == oldSelf"}]}}},
        "x-kubernetes-validations":[{"rule":"self.n >"},{"rule":"self.all(k, k != 'x')"}]}));
    let e: Vec<String> = validate_crd_schema(&crd(s))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.n >\": compilation failed"));
    assert!(e[1].contains("properties[tags].items.x-kubernetes-validations[0].rule"));
    assert!(e[1].contains("oldSelf cannot be used on the uncorrelatable portion"));
    // a version without schema
    let mut c = crd(json!({}));
    c["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    let e = validate_crd_schema(&c).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
    );
}

/// The compiled-schema cache returns the same compilation for the same schema, and validating many objects
/// with it keeps judging each one (the emulator validates thousands). How long one validation takes is
/// printed (`MEASURE`), not asserted: a debug build on a loaded machine says nothing about it.
#[test]
fn cache_and_many_validations() {
    let s = crd_schema(
        json!({"type":"object","properties":{"replicas":{"type":"integer","minimum":0},
        "name":{"type":"string","pattern":"^[a-z]+$"}},
        "x-kubernetes-validations":[{"rule":"self.replicas < 100","message":"m"}]}),
    );
    let a = compiled(&s);
    let b = compiled(&s);
    assert!(Arc::ptr_eq(&a, &b));
    let start = std::time::Instant::now();
    let mut rejected = 0;
    for i in 0..1000 {
        // Every tenth breaks the CEL rule (replicas < 100).
        let replicas = if i % 10 == 9 { 100 + i } else { i % 50 };
        match validate_custom_resource(
            &s,
            obj(json!({"replicas": replicas,"name":"abc"})),
            None,
            UnknownFields::Strict,
        ) {
            Ok(_) => assert!(replicas < 100, "replicas {replicas} accepted"),
            Err(e) => {
                assert!(replicas >= 100, "replicas {replicas} rejected: {e:?}");
                rejected += 1;
            }
        }
    }
    assert_eq!(rejected, 100);
    assert!(
        Arc::ptr_eq(&a, &compiled(&s)),
        "still the cached compilation"
    );
    let per = start.elapsed() / 1000;
    eprintln!("MEASURE validate_custom_resource: {per:?} per object");
}

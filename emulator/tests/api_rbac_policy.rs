//! `rbac.authorization.k8s.io/v1` (Role, ClusterRole, RoleBinding, ClusterRoleBinding) and
//! `policy/v1` PodDisruptionBudget through the real kubectl: discovery and OpenAPI (kubectl's
//! validation finds the kinds), client- and server-side apply, the printers' columns, the
//! strategies' validation (policy rules, roleRef, subjects, minAvailable/maxUnavailable) and the
//! immutable roleRef.

mod api_common;

use api_common::{Kubectl, start};

const OBJECTS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "tycho:manager"
rules:
  - apiGroups: ["tycho.dev"]
    resources: ["systems", "systems/status"]
    verbs: ["get", "list", "watch", "patch"]
  - nonResourceURLs: ["/metrics"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: "tycho:manager"
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "tycho:manager"}
subjects:
  - {kind: ServiceAccount, name: tycho, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: leader-election
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: leader-election
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader-election}
subjects:
  - {kind: ServiceAccount, name: tycho, namespace: default}
  - {kind: User, apiGroup: rbac.authorization.k8s.io, name: alice}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: tycho
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: tycho}
"#;

/// Both apply paths accept the kinds (kubectl's strict field validation needs them in OpenAPI v3),
/// `get` prints kube-apiserver's columns, and a second apply is a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_and_pdb_apply_and_print() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    let out = k.ok(&["apply", "-f", "-"], Some(OBJECTS)).await;
    for line in [
        "clusterrole.rbac.authorization.k8s.io/tycho:manager created",
        "clusterrolebinding.rbac.authorization.k8s.io/tycho:manager created",
        "role.rbac.authorization.k8s.io/leader-election created",
        "rolebinding.rbac.authorization.k8s.io/leader-election created",
        "poddisruptionbudget.policy/tycho created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let again = k.ok(&["apply", "-f", "-"], Some(OBJECTS)).await;
    assert_eq!(again.matches("unchanged").count(), 4, "{again}");
    // kubectl always sends a PDB's selector (patchStrategy=replace makes the three-way diff
    // include it), so it reports "configured", as against kube-apiserver; nothing changes.
    assert!(
        again.contains("poddisruptionbudget.policy/tycho configured"),
        "{again}"
    );
    let meta = k
        .ok(
            &[
                "get",
                "pdb",
                "tycho",
                "--show-managed-fields",
                "-o",
                "jsonpath={.metadata.generation} {.metadata.managedFields}",
            ],
            None,
        )
        .await;
    assert!(
        meta.starts_with("1 "),
        "a no-op patch bumped the generation: {meta}"
    );
    // Status set by the strategy on create is nobody's field (kube-apiserver's reset fields).
    assert!(!meta.contains("f:status"), "{meta}");
    let ssa = k
        .ok(
            &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
            Some(OBJECTS),
        )
        .await;
    assert_eq!(ssa.matches("serverside-applied").count(), 5, "{ssa}");

    let rb = k.ok(&["get", "rolebinding", "-o", "wide"], None).await;
    assert!(rb.contains("Role/leader-election"), "{rb}");
    assert!(rb.contains("default:tycho") && rb.contains("alice"), "{rb}");
    let cr = k.ok(&["get", "clusterrole", "tycho:manager"], None).await;
    assert!(cr.contains("CREATED AT"), "{cr}");
    let pdb = k.ok(&["get", "pdb"], None).await;
    assert!(
        pdb.contains("MIN AVAILABLE") && pdb.contains("ALLOWED DISRUPTIONS"),
        "{pdb}"
    );
    assert!(pdb.contains("N/A"), "maxUnavailable unset: {pdb}");
    let st = k
        .ok(&["get", "pdb", "tycho", "-o", "jsonpath={.status}"], None)
        .await;
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["disruptionsAllowed"], 0, "{st}");
    assert_eq!(st["expectedPods"], 0, "{st}");
    emu.shutdown().await;
}

/// The RBAC and PDB strategies' validation: rules need verbs, a Role may not name non-resource
/// URLs, a ClusterRoleBinding binds only ClusterRoles and needs service account namespaces, a
/// binding's roleRef cannot change, a PDB may not set both minAvailable and maxUnavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_and_pdb_validation() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    k.ok(&["apply", "-f", "-"], Some(OBJECTS)).await;

    let bad_cases = [
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r1}\nrules:\n  - {apiGroups: [\"\"], resources: [pods]}\n",
            "rules[0].verbs: Required value",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r2}\nrules:\n  - {nonResourceURLs: [/healthz], verbs: [get]}\n",
            "namespaced rules cannot apply to non-resource URLs",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b1}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: x}\nsubjects:\n  - {kind: ServiceAccount, name: tycho}\n",
            "roleRef.kind: Unsupported value: \"Role\"",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b2}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: x}\nsubjects:\n  - {kind: ServiceAccount, name: tycho}\n",
            "subjects[0].namespace: Required value",
        ),
        (
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p1}\nspec: {minAvailable: 1, maxUnavailable: 1}\n",
            "minAvailable and maxUnavailable cannot be both set",
        ),
        (
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p2}\nspec: {maxUnavailable: \"150%\"}\n",
            "spec.maxUnavailable: Invalid value",
        ),
    ];
    for (yaml, want) in bad_cases {
        let o = k.run(&["create", "-f", "-"], Some(yaml)).await;
        assert_ne!(o.code, 0, "accepted:\n{yaml}");
        assert!(o.stderr.contains(want), "want {want:?}, got {}", o.stderr);
    }

    let changed = OBJECTS.replace(
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader-election}",
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: \"tycho:manager\"}",
    );
    let o = k.run(&["apply", "-f", "-"], Some(&changed)).await;
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(o.stderr.contains("cannot change roleRef"), "{}", o.stderr);
    // A PDB's spec is mutable (since policy/v1beta1 in 1.15) and bumps the generation.
    let gen0 = k
        .ok(
            &[
                "get",
                "pdb",
                "tycho",
                "-o",
                "jsonpath={.metadata.generation}",
            ],
            None,
        )
        .await;
    k.ok(
        &[
            "patch",
            "pdb",
            "tycho",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":"50%"}}"#,
        ],
        None,
    )
    .await;
    let gen1 = k
        .ok(
            &[
                "get",
                "pdb",
                "tycho",
                "-o",
                "jsonpath={.metadata.generation}",
            ],
            None,
        )
        .await;
    assert_eq!(
        gen1.parse::<i64>().unwrap(),
        gen0.parse::<i64>().unwrap() + 1
    );
    emu.shutdown().await;
}

//! Property tests over random valid Systems (a seeded generator; set `TYCHO_PROP_SEED` and
//! `TYCHO_PROP_CASES` to explore further): every one validates, renders to objects that
//! deserialize as k8s-openapi types, carries owner references and labels, mounts every file,
//! publishes every exposed port, and renders byte-identically twice.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Service, Toleration};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tycho_model::*;
use tycho_operator::render::{RenderSettings, Rendered, Renderer, WorkloadObject, owner_reference};

const STRINGS: &[&str] = &[
    "x",
    "hello world",
    "a: b",
    "# c",
    "{{ x }}",
    "{% y %}",
    "&a *b !!binary",
    "- item",
    "---",
    "multi\nline\n",
    "quote\"s'",
    "☃",
    "",
    "true",
    "1e3",
];

struct Gen {
    rng: StdRng,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn n(&mut self, max: usize) -> usize {
        self.rng.random_range(0..=max)
    }
    fn text(&mut self) -> String {
        let parts = self.n(3);
        (0..parts)
            .map(|_| *self.pick(STRINGS))
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn quantity(&mut self, base: u32) -> (String, String) {
        // (request, limit) with limit >= request, in varied notations.
        let req = self.rng.random_range(1..=base);
        let lim = req + self.rng.random_range(0..=base);
        match self.n(3) {
            0 => (format!("{req}m"), format!("{lim}m")),
            1 => (format!("{req}Mi"), format!("{lim}Mi")),
            2 => (format!("{}", req), format!("{}", lim)),
            _ => (format!("{req}k"), format!("{}", u64::from(lim) * 1000)),
        }
    }

    fn system(&mut self) -> System {
        let name_len = self.rng.random_range(1..=MAX_NAME_LEN);
        let mut name: String = "s".to_string();
        while name.len() < name_len {
            name.push(*self.pick(&['a', 'b', '7', '-']));
        }
        let name = name.trim_end_matches('-').to_string();
        let workload = if self.chance(0.3) {
            Workload::Pod
        } else {
            Workload::Deployment
        };
        let expose = *self.pick(&[Expose::NodePort, Expose::ClusterIP, Expose::None]);
        let mut used_ports = BTreeSet::new();
        let mut used_node_ports = BTreeSet::new();
        let mut port_names = 0;
        let containers: Vec<ContainerSpec> = (0..self.rng.random_range(1..=4))
            .map(|ci| {
                let mut c = ContainerSpec {
                    name: format!(
                        "c{ci}{}",
                        if self.chance(0.2) {
                            "-with-a-rather-long-name-to-test-truncation-of-port-names"
                        } else {
                            ""
                        }
                    ),
                    image: self
                        .pick(&[
                            "nginx:1.27",
                            "busybox",
                            "registry.example.com:5000/a/b@sha256:00",
                        ])
                        .to_string(),
                    sleep: self.chance(0.2),
                    ..Default::default()
                };
                if self.chance(0.5) {
                    c.command = (0..self.n(3)).map(|_| self.text()).collect();
                }
                c.args = (0..self.n(3)).map(|_| self.text()).collect();
                if self.chance(0.3) {
                    c.working_dir = Some(format!("/w/{}", self.text()));
                }
                for ei in 0..self.n(4) {
                    c.env.push(if self.chance(0.7) {
                        EnvVar {
                            name: format!("E{ei}"),
                            value: Some(self.text()),
                            value_from: None,
                        }
                    } else {
                        let r = KeyRef {
                            name: "src".into(),
                            key: format!("k.{ei}"),
                            optional: self.chance(0.5),
                        };
                        let from = if self.chance(0.5) {
                            EnvSource {
                                secret_key_ref: Some(r),
                                config_map_key_ref: None,
                            }
                        } else {
                            EnvSource {
                                secret_key_ref: None,
                                config_map_key_ref: Some(r),
                            }
                        };
                        EnvVar {
                            name: format!("E{ei}"),
                            value: None,
                            value_from: Some(from),
                        }
                    });
                }
                for _ in 0..self.n(3) {
                    let protocol =
                        *self.pick(&[Protocol::TCP, Protocol::TCP, Protocol::UDP, Protocol::SCTP]);
                    let port = *self.pick(&[80, 443, 8080, 8888, 53, 9000, 1, 65535]);
                    if !used_ports.insert((port, protocol.as_str())) {
                        continue;
                    }
                    let exposed = self.chance(0.8);
                    let node_port = (exposed && expose == Expose::NodePort && self.chance(0.3))
                        .then(|| self.rng.random_range(30000..=32767))
                        .filter(|np| used_node_ports.insert((*np, protocol.as_str())));
                    let name = self.chance(0.4).then(|| {
                        port_names += 1;
                        format!("p{port_names}")
                    });
                    c.ports.push(PortSpec {
                        port,
                        name,
                        protocol,
                        expose: exposed,
                        node_port,
                    });
                }
                if !c.ports.is_empty() && self.chance(0.5) {
                    let port = c.ports[0].port;
                    c.readiness = Some(if self.chance(0.5) {
                        Readiness {
                            http: Some(HttpCheck {
                                path: "/h: #x".into(),
                                port,
                                host: self.chance(0.5).then(|| "h.example".into()),
                            }),
                            tcp: None,
                        }
                    } else {
                        Readiness {
                            http: None,
                            tcp: Some(TcpCheck { port }),
                        }
                    });
                }
                if self.chance(0.5) {
                    let (rc, lc) = self.quantity(4000);
                    let (rm, lm) = self.quantity(512);
                    let gpus = self.chance(0.2).then(|| self.rng.random_range(0..=4));
                    c.requests = Some(Resources {
                        cpus: Some(rc),
                        memory: Some(rm),
                        gpus,
                        ephemeral_storage: None,
                    });
                    c.limits = Some(Resources {
                        cpus: Some(lc),
                        memory: Some(lm),
                        gpus,
                        ephemeral_storage: self.chance(0.3).then(|| "1Gi".into()),
                    });
                }
                for fi in 0..self.n(3) {
                    let path = format!(
                        "/etc/app{fi}/{}",
                        self.pick(&["conf", "a b: c", "#x", "{{y}}"])
                    );
                    c.files.push(if self.chance(0.7) {
                        FileSpec {
                            path,
                            content: Some(self.text()),
                            binary_content: None,
                            mode: self.chance(0.3).then_some(0o755),
                        }
                    } else {
                        FileSpec {
                            path,
                            content: None,
                            binary_content: Some("AAEC/w==".into()),
                            mode: None,
                        }
                    });
                }
                c
            })
            .collect();
        let mut volumes = Vec::new();
        for vi in 0..self.n(2) {
            let container = self
                .chance(0.5)
                .then(|| containers[self.n(containers.len() - 1)].name.clone());
            volumes.push(VolumeSpec {
                claim: format!("claim-{vi}"),
                mount_path: format!("/data/{vi}"),
                sub_path: self.chance(0.3).then(|| "sub/dir".into()),
                read_only: self.chance(0.5),
                container,
            });
        }
        let mut labels = BTreeMap::new();
        if self.chance(0.5) {
            labels.insert("team".into(), "research".into());
            labels.insert("example.com/tier".into(), "web".into());
        }
        let mut annotations = BTreeMap::new();
        if self.chance(0.5) {
            annotations.insert("example.com/note".into(), self.text());
        }
        System {
            metadata: kube::api::ObjectMeta {
                name: Some(name),
                namespace: self.chance(0.5).then(|| "ns-1".into()),
                uid: self
                    .chance(0.7)
                    .then(|| format!("uid-{}", self.n(1_000_000))),
                ..Default::default()
            },
            spec: SystemSpec {
                containers,
                workload,
                replicas: if workload == Workload::Pod {
                    self.n(1) as i32
                } else {
                    self.n(5) as i32
                },
                paused: workload == Workload::Deployment && self.chance(0.2),
                expose,
                session: self.chance(0.3).then(|| "lease.a-1".into()),
                owner: self
                    .chance(0.3)
                    .then(|| "system:serviceaccount:team-a:alice".into()),
                template: None,
                parameters: BTreeMap::new(),
                network: self.chance(0.3).then(|| NetworkSpec {
                    isolated: self.chance(0.7),
                    allow_from: vec![NetworkPeer {
                        cidr: Some("10.0.0.0/8".into()),
                        except: vec!["10.1.0.0/16".into()],
                        ..Default::default()
                    }],
                    egress: self.chance(0.5).then(EgressSpec::default),
                }),
                lifetime: self.chance(0.2).then_some(60),
                volumes,
                node_selector: if self.chance(0.3) {
                    [("kubernetes.io/os".to_string(), "linux".to_string())]
                        .into_iter()
                        .collect()
                } else {
                    BTreeMap::new()
                },
                tolerations: if self.chance(0.3) {
                    vec![Toleration {
                        key: Some("gpu".into()),
                        operator: Some("Exists".into()),
                        effect: Some("NoSchedule".into()),
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                service_account_name: self.chance(0.2).then(|| "runner".into()),
                security_context: None,
                labels,
                annotations,
            },
            status: None,
        }
    }
}

fn check(system: &System, renderer: &Renderer) -> Result<(), String> {
    tycho_model::validate::validate(system)
        .map_err(|e| format!("generator produced an invalid System: {e:?}"))?;
    let rendered = renderer
        .render(system)
        .map_err(|e| format!("render failed: {e}"))?;

    // Determinism: a second, independent renderer gives the same bytes.
    let yaml = rendered.to_yaml().map_err(|e| e.to_string())?;
    let again = Renderer::new(renderer.settings().clone())
        .unwrap()
        .render(system)
        .unwrap()
        .to_yaml()
        .unwrap();
    if yaml != again {
        return Err("rendering is not deterministic".into());
    }

    // The YAML parses back into typed objects equal to what was rendered.
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&yaml).map_err(|e| e.to_string())?;
    let mut reparsed = Rendered {
        workload: WorkloadObject::Pod(Box::default()),
        service: None,
        config_map: None,
        network_policy: None,
    };
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let bad = |e: serde_json::Error| format!("{kind} does not deserialize: {e}");
        match kind.as_str() {
            "Deployment" => {
                reparsed.workload = WorkloadObject::Deployment(Box::new(
                    serde_json::from_value::<Deployment>(doc).map_err(bad)?,
                ))
            }
            "Pod" => {
                reparsed.workload =
                    WorkloadObject::Pod(Box::new(serde_json::from_value::<Pod>(doc).map_err(bad)?))
            }
            "Service" => {
                reparsed.service = Some(serde_json::from_value::<Service>(doc).map_err(bad)?)
            }
            "ConfigMap" => {
                reparsed.config_map = Some(serde_json::from_value::<ConfigMap>(doc).map_err(bad)?)
            }
            "NetworkPolicy" => {
                reparsed.network_policy = Some(
                    serde_json::from_value::<k8s_openapi::api::networking::v1::NetworkPolicy>(doc)
                        .map_err(bad)?,
                )
            }
            other => return Err(format!("unexpected kind {other}")),
        }
    }
    if reparsed != rendered {
        return Err("YAML output does not round-trip to the rendered objects".into());
    }

    // Metadata invariants on every object.
    let name = system.name_or_empty();
    let owner = owner_reference(system);
    let mut metas = vec![(rendered.workload.metadata(), name.clone())];
    if let Some(s) = &rendered.service {
        metas.push((&s.metadata, name.clone()));
    }
    if let Some(c) = &rendered.config_map {
        metas.push((&c.metadata, format!("{name}-files")));
    }
    // A NetworkPolicy exactly when the System is isolated or restricts egress, selecting its pods.
    let wants_policy = system
        .spec
        .network
        .as_ref()
        .is_some_and(|n| n.isolated || n.egress.is_some());
    if rendered.network_policy.is_some() != wants_policy {
        return Err(format!(
            "NetworkPolicy rendered: {}, wanted: {wants_policy}",
            rendered.network_policy.is_some()
        ));
    }
    if let Some(np) = &rendered.network_policy {
        let selector = np
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.as_ref())
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        if selector.get(LABEL_SYSTEM) != Some(&name) {
            return Err(format!("NetworkPolicy selects {selector:?}"));
        }
        metas.push((&np.metadata, name.clone()));
    }
    for (meta, want) in metas {
        if meta.name.as_deref() != Some(want.as_str())
            || meta.name.as_ref().is_some_and(|n| n.len() > 63)
        {
            return Err(format!("bad name {:?}", meta.name));
        }
        if meta.namespace != Some(system.namespace_or_default()) {
            return Err("bad namespace".into());
        }
        let labels = meta.labels.clone().unwrap_or_default();
        for (k, v) in tycho_operator::render::standard_labels(system)
            .iter()
            .chain(&system.spec.labels)
        {
            if labels.get(k) != Some(v) {
                return Err(format!("label {k} missing on {want}"));
            }
        }
        if meta.owner_references != owner.clone().map(|o| vec![o]) {
            return Err(format!(
                "owner references of {want}: {:?}",
                meta.owner_references
            ));
        }
        if let Some(o) = meta.owner_references.as_ref().and_then(|o| o.first())
            && (o.controller != Some(true)
                || o.block_owner_deletion != Some(true)
                || o.kind != "System")
        {
            return Err(
                "owner reference is not a blocking controller reference to the System".into(),
            );
        }
    }

    // Workload shape.
    let (pod_labels, pod_spec): (BTreeMap<String, String>, &PodSpec) = match &rendered.workload {
        WorkloadObject::Deployment(d) => {
            if system.spec.workload != Workload::Deployment {
                return Err("wrong workload kind".into());
            }
            let spec = d.spec.as_ref().ok_or("no spec")?;
            let want = if system.spec.paused {
                0
            } else {
                system.spec.replicas
            };
            if spec.replicas != Some(want) {
                return Err(format!("replicas {:?} != {want}", spec.replicas));
            }
            let tmeta = spec
                .template
                .metadata
                .as_ref()
                .ok_or("no template metadata")?;
            let labels = tmeta.labels.clone().unwrap_or_default();
            for (k, v) in spec.selector.match_labels.clone().unwrap_or_default() {
                if labels.get(&k) != Some(&v) {
                    return Err("Deployment selector does not select its pods".into());
                }
            }
            (labels, spec.template.spec.as_ref().ok_or("no pod spec")?)
        }
        WorkloadObject::Pod(p) => {
            if system.spec.workload != Workload::Pod {
                return Err("wrong workload kind".into());
            }
            (
                p.metadata.labels.clone().unwrap_or_default(),
                p.spec.as_ref().ok_or("no pod spec")?,
            )
        }
    };
    if pod_labels.get(LABEL_SYSTEM) != Some(&name) {
        return Err("pods lack tycho.dev/system".into());
    }
    if pod_spec.containers.len() != system.spec.containers.len() {
        return Err("container count differs".into());
    }
    let cm = rendered.config_map.as_ref();
    for (c, k) in system.spec.containers.iter().zip(&pod_spec.containers) {
        if k.name != c.name || k.image.as_deref() != Some(c.image.as_str()) {
            return Err(format!("container {} name/image differ", c.name));
        }
        if c.sleep {
            if k.command.clone().unwrap_or_default()
                != tycho_operator::render::SLEEP_COMMAND.map(String::from)
                || k.args.is_some()
            {
                return Err("sleeping container does not idle".into());
            }
        } else if k.command.clone().unwrap_or_default() != c.command
            || k.args.clone().unwrap_or_default() != c.args
        {
            return Err(format!("command/args of {} differ", c.name));
        }
        for e in &c.env {
            let got = k
                .env
                .iter()
                .flatten()
                .find(|x| x.name == e.name)
                .ok_or("env var missing")?;
            if got.value != e.value {
                return Err(format!("env {} value differs", e.name));
            }
        }
        for (i, f) in c.files.iter().enumerate() {
            let key = tycho_operator::render::file_key(&c.name, i);
            let m = k
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == f.path)
                .ok_or("file not mounted")?;
            if m.sub_path.as_deref() != Some(key.as_str()) || m.read_only != Some(true) {
                return Err("file mount wrong".into());
            }
            let cm = cm.ok_or("files but no ConfigMap")?;
            let ok = match (&f.content, &f.binary_content) {
                (Some(t), _) => cm.data.as_ref().and_then(|d| d.get(&key)) == Some(t),
                (None, Some(_)) => {
                    cm.binary_data
                        .as_ref()
                        .and_then(|d| d.get(&key))
                        .map(|b| b.0.clone())
                        == Some(vec![0, 1, 2, 255])
                }
                _ => false,
            };
            if !ok {
                return Err(format!("file {key} content not in the ConfigMap"));
            }
        }
        let names: BTreeSet<_> = k
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.clone())
            .collect();
        if names.iter().any(|n| n.len() > 15) {
            return Err("container port name longer than 15".into());
        }
    }

    // Service: exactly the exposed ports, unique DNS-label names, selector on tycho.dev/system.
    let exposed: Vec<&PortSpec> = system
        .spec
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter(|p| p.expose)
        .collect();
    match (&rendered.service, system.spec.expose, exposed.is_empty()) {
        (None, Expose::None, _) | (None, _, true) => {}
        (Some(s), e, false) if e != Expose::None => {
            let spec = s.spec.as_ref().ok_or("service without spec")?;
            let ports = spec.ports.clone().unwrap_or_default();
            if ports.len() != exposed.len() {
                return Err("service ports differ from exposed ports".into());
            }
            let names: BTreeSet<_> = ports
                .iter()
                .map(|p| p.name.clone().unwrap_or_default())
                .collect();
            if names.len() != ports.len()
                || names
                    .iter()
                    .any(|n| !tycho_model::validate::is_dns1123_label(n))
            {
                return Err(format!(
                    "service port names not unique DNS labels: {names:?}"
                ));
            }
            let want_type = if e == Expose::NodePort {
                "NodePort"
            } else {
                "ClusterIP"
            };
            if spec.type_.as_deref() != Some(want_type) {
                return Err("wrong service type".into());
            }
            if spec.selector.clone().unwrap_or_default()
                != [(LABEL_SYSTEM.to_string(), name.clone())]
                    .into_iter()
                    .collect()
            {
                return Err("wrong service selector".into());
            }
            for p in &exposed {
                let sp = ports
                    .iter()
                    .find(|q| {
                        q.port == p.port && q.protocol.as_deref() == Some(p.protocol.as_str())
                    })
                    .ok_or("exposed port missing")?;
                if sp.node_port != p.node_port {
                    return Err("node port differs".into());
                }
            }
        }
        (s, e, empty) => {
            return Err(format!(
                "service presence wrong: {} for expose {e:?}, nothing exposed: {empty}",
                s.is_some()
            ));
        }
    }
    Ok(())
}

#[test]
fn random_valid_systems_render_to_sound_objects() {
    let seed: u64 = std::env::var("TYCHO_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7c0_u64);
    let cases: u64 = std::env::var("TYCHO_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let renderers = [
        Renderer::new(RenderSettings::default()).unwrap(),
        Renderer::new(RenderSettings {
            gpu_resource: "amd.com/gpu".into(),
            template_dir: None,
        })
        .unwrap(),
    ];
    for case in 0..cases {
        let mut g = Gen {
            rng: StdRng::seed_from_u64(seed.wrapping_add(case)),
        };
        let system = g.system();
        let renderer = &renderers[(case % 2) as usize];
        if let Err(e) = check(&system, renderer) {
            panic!(
                "case {case} (TYCHO_PROP_SEED={seed}): {e}\nSystem: {}",
                serde_json::to_string_pretty(&system).unwrap()
            );
        }
    }
}

#[test]
fn gpus_map_to_the_configured_resource() {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(1),
    };
    let mut system = g.system();
    system.spec.containers[0].limits = Some(Resources {
        gpus: Some(2),
        ..Default::default()
    });
    system.spec.containers[0].requests = None;
    let r = Renderer::new(RenderSettings {
        gpu_resource: "amd.com/gpu".into(),
        template_dir: None,
    })
    .unwrap();
    let rendered = r.render(&system).unwrap();
    let json = serde_json::to_string(&rendered.objects().unwrap()).unwrap();
    assert!(json.contains(r#""amd.com/gpu":"2""#), "{json}");
    assert!(!json.contains("nvidia.com/gpu"));
}

#[test]
fn a_system_survives_a_yaml_round_trip_before_rendering() {
    // What `tycho render -f` does: YAML text → System → objects, equal to rendering the value.
    let renderer = Renderer::new(RenderSettings::default()).unwrap();
    for case in 0..50 {
        let mut g = Gen {
            rng: StdRng::seed_from_u64(1000 + case),
        };
        let system = g.system();
        let text = serde_saphyr::to_string(&system).unwrap();
        let parsed = tycho::cli::render::parse_systems("generated", &text)
            .unwrap()
            .remove(0);
        assert_eq!(
            renderer.render(&parsed).unwrap().to_yaml().unwrap(),
            renderer.render(&system).unwrap().to_yaml().unwrap(),
            "case {case}"
        );
    }
}

#[test]
fn the_largest_allowed_files_render_and_one_byte_more_is_refused() {
    let renderer = Renderer::new(RenderSettings::default()).unwrap();
    let mut g = Gen {
        rng: StdRng::seed_from_u64(7),
    };
    let mut system = g.system();
    for c in &mut system.spec.containers {
        c.files.clear();
    }
    volumes_off_files(&mut system);
    let text: String = "line: {{ x }} # &a\n".repeat(MAX_FILE_BYTES / 19 / 2);
    let binary = vec![0xffu8; MAX_FILE_BYTES - text.len()];
    use base64::Engine;
    system.spec.containers[0].files = vec![
        FileSpec {
            path: "/big/text".into(),
            content: Some(text.clone()),
            ..Default::default()
        },
        FileSpec {
            path: "/big/binary".into(),
            binary_content: Some(base64::engine::general_purpose::STANDARD.encode(&binary)),
            ..Default::default()
        },
    ];
    let rendered = renderer.render(&system).unwrap();
    let cm = rendered.config_map.as_ref().unwrap();
    let key0 = tycho_operator::render::file_key(&system.spec.containers[0].name, 0);
    let key1 = tycho_operator::render::file_key(&system.spec.containers[0].name, 1);
    assert_eq!(cm.data.as_ref().unwrap()[&key0], text);
    assert_eq!(cm.binary_data.as_ref().unwrap()[&key1].0, binary);
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&rendered.to_yaml().unwrap()).unwrap();
    assert_eq!(docs, rendered.objects().unwrap());

    system.spec.containers[0].files[0].content = Some(format!("{text}!"));
    let err = renderer.render(&system).unwrap_err();
    assert!(err.to_string().contains("spec.containers[].files"), "{err}");
}

/// Keep claims away from the files' directory so the System stays valid.
fn volumes_off_files(system: &mut System) {
    for v in &mut system.spec.volumes {
        v.mount_path = format!("/claims{}", v.mount_path);
    }
}

//! Service ClusterIP (10.96.0.0/12) and NodePort (30000–32767) allocation without collisions,
//! released when a Service is deleted or stops needing them, as kube-apiserver's service
//! allocators do.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::error::Cause;

/// First node port.
pub const NODE_PORT_MIN: u16 = 30000;
/// Last node port.
pub const NODE_PORT_MAX: u16 = 32767;
const NET: u32 = 0x0A60_0000; // 10.96.0.0
const NET_SIZE: u32 = 1 << 20; // /12

/// The allocator state.
#[derive(Debug, Default)]
pub struct Allocator {
    ips: HashSet<u32>,
    ports: HashSet<u16>,
    next_ip: u32,
    next_port: u16,
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort") | Some("LoadBalancer")
    )
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc["spec"]["type"].as_str() != Some("ExternalName")
}

fn parse_ip(s: &str) -> Option<u32> {
    let ip: Ipv4Addr = s.parse().ok()?;
    let n = u32::from(ip);
    (n & !(NET_SIZE - 1) == NET).then_some(n)
}

impl Allocator {
    /// A fresh allocator; 10.96.0.1 is reserved for the `kubernetes` service.
    pub fn new() -> Allocator {
        let mut a = Allocator {
            next_ip: 10,
            next_port: NODE_PORT_MIN,
            ..Allocator::default()
        };
        a.ips.insert(NET + 1);
        a
    }

    fn alloc_ip(&mut self) -> Option<u32> {
        for _ in 0..NET_SIZE {
            let off = self.next_ip % NET_SIZE;
            self.next_ip = self.next_ip.wrapping_add(1);
            if off == 0 || off == NET_SIZE - 1 {
                continue;
            }
            let ip = NET + off;
            if self.ips.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    fn alloc_port(&mut self) -> Option<u16> {
        let span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= NODE_PORT_MAX {
                NODE_PORT_MIN
            } else {
                p + 1
            };
            if self.ports.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// Number of node ports in use.
    pub fn node_ports_in_use(&self) -> usize {
        self.ports.len()
    }

    /// Allocates what a Service needs on create or update. `old` is the stored Service on
    /// update: its ClusterIP is kept, and node ports the new spec omits are carried over by port
    /// name (as kube-apiserver's `patchAllocatedValues`). On error nothing changes.
    pub fn allocate(&mut self, svc: &mut Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
        let mut taken_ips = Vec::new();
        let mut taken_ports = Vec::new();
        let r = self.allocate_inner(svc, old, &mut taken_ips, &mut taken_ports);
        if r.is_err() {
            for ip in taken_ips {
                self.ips.remove(&ip);
            }
            for p in taken_ports {
                self.ports.remove(&p);
            }
        } else if let Some(old) = old {
            // Release what the old object held and the new one no longer does.
            let new_ports = node_ports(svc);
            for p in node_ports(old) {
                if !new_ports.contains(&p) {
                    self.ports.remove(&p);
                }
            }
            let new_ip = cluster_ip(svc);
            if let Some(ip) = cluster_ip(old)
                && Some(ip) != new_ip
            {
                self.ips.remove(&ip);
            }
        }
        r
    }

    fn allocate_inner(
        &mut self,
        svc: &mut Value,
        old: Option<&Value>,
        taken_ips: &mut Vec<u32>,
        taken_ports: &mut Vec<u16>,
    ) -> Result<(), Vec<Cause>> {
        let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        // ClusterIP
        if ty != "ExternalName" {
            let requested = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let old_ip = old.and_then(cluster_ip);
            if requested == "None" {
                spec.insert("clusterIPs".into(), json!(["None"]));
            } else if requested.is_empty() {
                let ip = match old_ip {
                    Some(ip) => ip,
                    None => {
                        let ip = self.alloc_ip().ok_or_else(|| {
                            vec![Cause::new(
                                "FieldValueInvalid",
                                "spec.clusterIPs",
                                "Internal error: range is full",
                            )]
                        })?;
                        taken_ips.push(ip);
                        ip
                    }
                };
                let s = Ipv4Addr::from(ip).to_string();
                spec.insert("clusterIP".into(), json!(s));
                spec.insert("clusterIPs".into(), json!([s]));
            } else if old_ip.map(|i| Ipv4Addr::from(i).to_string()) != Some(requested.clone()) {
                match parse_ip(&requested) {
                    None => {
                        return Err(vec![Cause::new(
                            "FieldValueInvalid",
                            "spec.clusterIPs",
                            format!(
                                "Invalid value: []string{{\"{requested}\"}}: failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                            ),
                        )]);
                    }
                    Some(ip) => {
                        if !self.ips.insert(ip) {
                            return Err(vec![Cause::new(
                                "FieldValueInvalid",
                                "spec.clusterIPs",
                                format!(
                                    "Invalid value: []string{{\"{requested}\"}}: failed to allocate IP {requested}: provided IP is already allocated"
                                ),
                            )]);
                        }
                        taken_ips.push(ip);
                        spec.insert("clusterIPs".into(), json!([requested]));
                    }
                }
            } else {
                spec.insert("clusterIPs".into(), json!([requested]));
            }
        }
        // NodePorts
        let needs = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports: Vec<(String, u16)> = match old {
            Some(o) if needs_node_ports(o) => o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let np = p["nodePort"].as_u64()? as u16;
                    Some((p["name"].as_str().unwrap_or_default().to_string(), np))
                })
                .collect(),
            _ => Vec::new(),
        };
        let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        let old_set: HashSet<u16> = old_ports.iter().map(|(_, p)| *p).collect();
        let mut used_here: HashSet<u16> = HashSet::new();
        // Explicit ports first.
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else {
                continue;
            };
            if !needs {
                pm.remove("nodePort");
                continue;
            }
            let np = pm.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
            if np == 0 {
                continue;
            }
            if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&np) {
                return Err(vec![Cause::new(
                    "FieldValueInvalid",
                    &format!("spec.ports[{i}].nodePort"),
                    format!(
                        "Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}"
                    ),
                )]);
            }
            if !used_here.insert(np) {
                return Err(vec![Cause::new(
                    "FieldValueDuplicate",
                    &format!("spec.ports[{i}].nodePort"),
                    format!("Duplicate value: {np}"),
                )]);
            }
            if old_set.contains(&np) {
                continue;
            }
            if !self.ports.insert(np) {
                return Err(vec![Cause::new(
                    "FieldValueInvalid",
                    &format!("spec.ports[{i}].nodePort"),
                    format!("Invalid value: {np}: provided port is already allocated"),
                )]);
            }
            taken_ports.push(np);
        }
        if !needs {
            return Ok(());
        }
        // Carry over omitted node ports by port name, then allocate the rest.
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else {
                continue;
            };
            if pm.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let name = pm
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if let Some((_, np)) = old_ports.iter().find(|(n, _)| *n == name)
                && !used_here.contains(np)
            {
                used_here.insert(*np);
                pm.insert("nodePort".into(), json!(np));
                continue;
            }
            let np = self.alloc_port().ok_or_else(|| {
                vec![Cause::new(
                    "FieldValueInvalid",
                    &format!("spec.ports[{i}].nodePort"),
                    "Invalid value: 0: range is full: no more node ports are available",
                )]
            })?;
            taken_ports.push(np);
            used_here.insert(np);
            pm.insert("nodePort".into(), json!(np));
        }
        Ok(())
    }

    /// Releases what a deleted Service held.
    pub fn release(&mut self, svc: &Value) {
        if let Some(ip) = cluster_ip(svc) {
            self.ips.remove(&ip);
        }
        for p in node_ports(svc) {
            self.ports.remove(&p);
        }
    }

    /// Marks what an existing Service holds as taken (e.g. when rebuilding state).
    pub fn reserve(&mut self, svc: &Value) {
        if let Some(ip) = cluster_ip(svc) {
            self.ips.insert(ip);
        }
        if needs_cluster_ip(svc) {
            for p in node_ports(svc) {
                self.ports.insert(p);
            }
        }
    }
}

fn cluster_ip(svc: &Value) -> Option<u32> {
    svc["spec"]["clusterIP"].as_str().and_then(parse_ip)
}

fn node_ports(svc: &Value) -> Vec<u16> {
    if !needs_node_ports(svc) {
        return Vec::new();
    }
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64().map(|n| n as u16))
        .filter(|n| *n != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ty: &str, ports: Value) -> Value {
        json!({"spec": {"type": ty, "ports": ports}})
    }

    /// Service node ports: allocated in range, a taken port is "provided port is already
    /// allocated", released on delete, and kept by name across updates that omit them.
    #[test]
    fn node_ports_allocate_collide_release_keep() {
        let mut a = Allocator::new();
        let mut s1 = svc(
            "NodePort",
            json!([{"name": "http", "port": 80, "nodePort": 30080}]),
        );
        a.allocate(&mut s1, None).unwrap();
        assert!(
            s1["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .starts_with("10.96.")
        );
        let mut s2 = svc(
            "NodePort",
            json!([{"name": "http", "port": 80, "nodePort": 30080}]),
        );
        let err = a.allocate(&mut s2, None).unwrap_err();
        assert!(
            err[0]
                .message
                .contains("provided port is already allocated")
        );
        let mut s3 = svc("NodePort", json!([{"name": "http", "port": 80}]));
        a.allocate(&mut s3, None).unwrap();
        let np = s3["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&np));
        assert_ne!(np, 30080);
        let mut upd = svc("NodePort", json!([{"name": "http", "port": 81}]));
        upd["spec"]["clusterIP"] = s3["spec"]["clusterIP"].clone();
        a.allocate(&mut upd, Some(&s3)).unwrap();
        assert_eq!(upd["spec"]["ports"][0]["nodePort"].as_u64().unwrap(), np);
        a.release(&s1);
        let mut s4 = svc(
            "NodePort",
            json!([{"name": "http", "port": 80, "nodePort": 30080}]),
        );
        a.allocate(&mut s4, None).unwrap();
    }

    /// Node ports: exhaustion of the 30000–32767 range is an Invalid error.
    #[test]
    fn node_port_exhaustion() {
        let mut a = Allocator::new();
        for _ in 0..(NODE_PORT_MAX - NODE_PORT_MIN + 1) {
            let mut s = svc("NodePort", json!([{"port": 80}]));
            a.allocate(&mut s, None).unwrap();
        }
        let mut s = svc("NodePort", json!([{"port": 80}]));
        assert!(a.allocate(&mut s, None).is_err());
    }
}

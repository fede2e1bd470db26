//! Resource quantities and resource lists, as the scheduler and kubelet account for them.
//!
//! Kubernetes quantities (`resource.Quantity`) are decimal numbers with an optional suffix:
//! binary SI (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), decimal SI (`n`, `u`, `m`, ``, `k`, `M`, `G`,
//! `T`, `P`, `E`) or a decimal exponent (`e3`, `E6`). Here they are held as *milli-units* in an
//! `i128` (like `Quantity.MilliValue()`, rounded up), so `100m` CPU is 100 and `1Gi` memory is
//! 1073741824000.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Error parsing a quantity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {quantity:?}: {reason}")]
pub struct QuantityError {
    /// The text that failed to parse.
    pub quantity: String,
    /// Why.
    pub reason: &'static str,
}

/// Parses a quantity into milli-units, rounding up (as `Quantity.MilliValue()` does).
pub fn parse_milli(q: &str) -> Result<i128, QuantityError> {
    let err = |reason| QuantityError {
        quantity: q.to_string(),
        reason,
    };
    let s = q.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    // Split the number (digits with at most one '.') from the suffix.
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err("no number"));
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 30 {
        return Err(err("too many digits"));
    }
    let mantissa: i128 = digits.parse().map_err(|_| err("bad digits"))?;
    // value = mantissa * 10^-frac_len * num / den
    let frac_len = u32::try_from(frac_part.len()).map_err(|_| err("too many digits"))?;
    let (mut num, mut den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| err("bad suffix"))?;
            if e.abs() > 30 {
                return Err(err("exponent out of range"));
            }
            if e >= 0 {
                (10i128.pow(e.unsigned_abs()), 1)
            } else {
                (1, 10i128.pow(e.unsigned_abs()))
            }
        }
        _ => return Err(err("bad suffix")),
    };
    num = num.checked_mul(1000).ok_or_else(|| err("too large"))?;
    den = den
        .checked_mul(
            10i128
                .checked_pow(frac_len)
                .ok_or_else(|| err("too many digits"))?,
        )
        .ok_or_else(|| err("too large"))?;
    let scaled = mantissa.checked_mul(num).ok_or_else(|| err("too large"))?;
    // Round up (away from zero for the magnitude), as MilliValue does.
    let milli = (scaled + den - 1) / den;
    Ok(if negative { -milli } else { milli })
}

/// A set of resources in milli-units, keyed by resource name (`cpu`, `memory`, `pods`,
/// `nvidia.com/gpu`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources(pub BTreeMap<String, i128>);

impl Resources {
    /// Parses a `ResourceList`; quantities that do not parse are reported.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Result<Self, QuantityError> {
        let mut out = BTreeMap::new();
        for (name, q) in list.into_iter().flatten() {
            out.insert(name.clone(), parse_milli(&q.0)?);
        }
        Ok(Resources(out))
    }

    /// The amount of `name` (0 when absent).
    pub fn get(&self, name: &str) -> i128 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Adds every resource of `other`.
    pub fn add(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Subtracts every resource of `other`.
    pub fn sub(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) -= v;
        }
    }

    /// Per resource, the larger of the two.
    pub fn max_with(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(0);
            if *v > *e {
                *e = *v;
            }
        }
    }
}

/// The requests of one container: `resources.requests`, where a resource with a limit but no
/// request counts its limit (the API server defaults requests to limits in that case).
fn container_requests(c: &Container) -> Result<Resources, QuantityError> {
    let res = c.resources.as_ref();
    let mut r = Resources::from_list(res.and_then(|r| r.limits.as_ref()))?;
    let req = Resources::from_list(res.and_then(|r| r.requests.as_ref()))?;
    for (k, v) in req.0 {
        r.0.insert(k, v);
    }
    Ok(r)
}

/// The effective requests of a pod, as the scheduler computes them (`resourcehelper.PodRequests`):
/// the sum over app containers (and restartable init containers, i.e. sidecars), or the largest
/// single init container if that is larger, plus `spec.overhead`.
pub fn pod_requests(pod: &Pod) -> Result<Resources, QuantityError> {
    let mut total = Resources::default();
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(total);
    };
    for c in &spec.containers {
        total.add(&container_requests(c)?);
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            total.add(&r);
        } else {
            // A regular init container runs alongside the sidecars started before it.
            let mut with_sidecars = r;
            with_sidecars.add(&sidecars);
            init_max.max_with(&with_sidecars);
        }
    }
    total.max_with(&init_max);
    total.add(&Resources::from_list(spec.overhead.as_ref())?);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities_as_kubernetes_does() {
        // Examples from the Quantity documentation (k8s.io/apimachinery/pkg/api/resource).
        assert_eq!(parse_milli("100m"), Ok(100));
        assert_eq!(parse_milli("1"), Ok(1000));
        assert_eq!(parse_milli("0.5"), Ok(500));
        assert_eq!(parse_milli("1.5"), Ok(1500));
        assert_eq!(parse_milli("1Ki"), Ok(1024 * 1000));
        assert_eq!(parse_milli("1Gi"), Ok((1i128 << 30) * 1000));
        assert_eq!(parse_milli("128974848"), Ok(128_974_848_000));
        assert_eq!(parse_milli("129e6"), Ok(129_000_000_000));
        assert_eq!(parse_milli("129M"), Ok(129_000_000_000));
        assert_eq!(parse_milli("123Mi"), Ok(123 * (1i128 << 20) * 1000));
        assert_eq!(parse_milli("1k"), Ok(1_000_000));
        assert_eq!(parse_milli("1E"), Ok(1_000_000_000_000_000_000_000));
        // MilliValue rounds up.
        assert_eq!(parse_milli("1n"), Ok(1));
        assert_eq!(parse_milli("1500u"), Ok(2));
        assert_eq!(parse_milli("-2"), Ok(-2000));
        assert!(parse_milli("").is_err());
        assert!(parse_milli("abc").is_err());
        assert!(parse_milli("1Xi").is_err());
        assert!(parse_milli("1.2.3").is_err());
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_requests_sum_containers_and_take_the_larger_init_container() {
        // PodRequests: max(sum(containers), max(initContainers)) + overhead.
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "200m", "nvidia.com/gpu": "1"}}}
                ],
                "initContainers": [
                    {"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}
                ],
                "overhead": {"cpu": "10m"}
            }
        }));
        let r = pod_requests(&p).unwrap();
        assert_eq!(r.get("cpu"), 1010);
        assert_eq!(r.get("memory"), 64 * (1 << 20) * 1000);
        assert_eq!(r.get("nvidia.com/gpu"), 1000);
    }

    #[test]
    fn sidecar_init_containers_add_to_the_sum() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                "initContainers": [
                    {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}
                ]
            }
        }));
        assert_eq!(pod_requests(&p).unwrap().get("cpu"), 150);
    }
}

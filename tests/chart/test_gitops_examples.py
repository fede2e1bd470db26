"""The example GitOps repository layouts (gitops/examples) hang together: every path an Argo CD Application
or Flux Kustomization points at exists in this repository, the kustomizations list every file of their folder,
and the values an Application or HelmRelease gives the chart pass the chart's schema and render to valid
Kubernetes objects. (tests/chart_gitops.rs renders the example Systems with `tycho render -f`.)
"""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import yaml

import chartlib
from chartlib import CHART, ROOT

EXAMPLES = ROOT / "gitops" / "examples"


def docs(path: Path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs():
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for d in docs(path):
            yield path, d


def test_every_kustomization_lists_its_folder():
    for path in EXAMPLES.rglob("kustomization.yaml"):
        listed = set(docs(path)[0]["resources"])
        present = {str(p.relative_to(path.parent)) for p in path.parent.rglob("*.yaml") if p.name != "kustomization.yaml"}
        assert listed == present, path


def test_argocd_applications_point_at_existing_paths():
    apps = [(p, d) for p, d in all_docs() if d.get("kind") == "Application"]
    assert len(apps) == 2
    for path, app in apps:
        assert app["apiVersion"] == "argoproj.io/v1alpha1"
        source = app["spec"]["source"]
        assert (ROOT / source["path"]).is_dir(), (path, source["path"])
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_flux_kustomizations_point_at_existing_paths_and_order():
    kss = {d["metadata"]["name"]: d for _, d in all_docs() if d.get("kind") == "Kustomization" and "spec" in d}
    assert set(kss) == {"tycho-operator", "research-systems"}
    for ks in kss.values():
        assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert (ROOT / ks["spec"]["path"]).is_dir(), ks["spec"]["path"]
        assert ks["spec"]["wait"] is True
    assert kss["research-systems"]["spec"]["dependsOn"] == [{"name": "tycho-operator"}]
    releases = [d for _, d in all_docs() if d.get("kind") == "HelmRelease"]
    assert len(releases) == 1
    assert (ROOT / releases[0]["spec"]["chart"]["spec"]["chart"]).is_dir()


def test_values_given_to_the_chart_are_valid():
    given = []
    for _, d in all_docs():
        if d.get("kind") == "Application" and "helm" in d["spec"]["source"]:
            given.append(d["spec"]["source"]["helm"]["valuesObject"])
        if d.get("kind") == "HelmRelease":
            given.append(d["spec"]["values"])
    assert len(given) == 2
    with helm.Chart.load(str(CHART)) as chart:
        for values in given:
            chart.validate_schema(chart.merge_values(values))
            for obj in chartlib.objects(chart.render(values, name="tycho", namespace="tycho-system")):
                chartlib.validate_kubernetes(obj)


def test_gitops_systems_name_no_session():
    systems = [d for _, d in all_docs() if d.get("kind") == "System"]
    assert len(systems) >= 2
    for s in systems:
        assert "session" not in s["spec"], s["metadata"]["name"]
        assert s["metadata"].get("namespace"), "a System in Git names its namespace"

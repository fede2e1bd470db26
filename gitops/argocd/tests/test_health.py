"""Run the Argo CD health check (gitops/argocd/health.lua) with a real Lua 5.1 interpreter (Argo CD's
gopher-lua implements Lua 5.1) over the status samples in gitops/argocd/testdata, which
tests/chart_gitops.rs keeps identical to what the controller's status function writes.
The cases and expected results are Argo CD's own test format, gitops/argocd/health_test.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lupa.lua51 import LuaRuntime

HERE = Path(__file__).resolve().parents[1]
SCRIPT = (HERE / "health.lua").read_text()
CASES = yaml.safe_load((HERE / "health_test.yaml").read_text())["tests"]


def health(obj: dict) -> dict:
    """Evaluate the health script the way Argo CD does: `obj` global in, a {status, message} table out."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_controller_status_samples(case):
    obj = json.loads((HERE / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


def test_every_sample_has_a_case():
    samples = {p.name for p in (HERE / "testdata").glob("*.json")}
    covered = {Path(c["inputPath"]).name for c in CASES}
    assert samples == covered


def test_all_argo_statuses_are_reachable():
    assert {c["healthStatus"]["status"] for c in CASES} == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_stale_conditions_do_not_count():
    # The controller observed generation 2 but a condition still describes generation 1: not Healthy.
    obj = json.loads((HERE / "testdata" / "ready.json").read_text())
    obj["metadata"]["generation"] = 2
    obj["status"]["observedGeneration"] = 2
    for c in obj["status"]["conditions"]:
        if c["type"] != "Ready":
            c["observedGeneration"] = 2
    assert health(obj)["status"] == "Progressing"


def test_argocd_cm_embeds_the_script():
    cm = yaml.safe_load((HERE / "argocd-cm.yaml").read_text())
    assert cm["data"]["resource.customizations.health.tycho.dev_System"] == SCRIPT

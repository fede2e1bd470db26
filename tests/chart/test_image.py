"""The Dockerfile and the chart agree (the image cannot be built in CI: there is no container engine), and the
build context keeps everything `cargo build --bin tycho` needs."""

from __future__ import annotations

import fnmatch
import json
import re

import chartlib
from chartlib import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
IGNORED = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]


def ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, p.rstrip("/")) or path.startswith(p.rstrip("/") + "/") for p in IGNORED)


def test_runtime_user_matches_the_charts_security_context():
    final_stage = DOCKERFILE.split("\nFROM ")[-1]
    assert final_stage.startswith("scratch")
    users = re.findall(r"^USER (\d+)(?::(\d+))?$", final_stage, re.M)
    assert users == [("65532", "65532")]
    objs = chartlib.objects(chartlib.render())
    pod = [o for o in objs if o["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["runAsGroup"] == 65532


def test_entrypoint_and_args_fit_the_chart():
    assert json.loads(re.search(r"^ENTRYPOINT (.*)$", DOCKERFILE, re.M).group(1)) == ["/tycho"]
    assert json.loads(re.search(r"^CMD (.*)$", DOCKERFILE, re.M).group(1)) == ["controller"]
    objs = chartlib.objects(chartlib.render())
    container = [o for o in objs if o["kind"] == "Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container, "the chart must keep the image's ENTRYPOINT"
    assert container["args"][0] == "controller"


def test_build_context_keeps_what_cargo_needs():
    for path in ("Cargo.toml", "Cargo.lock", "src/main.rs", "emulator/Cargo.toml", "emulator/src/lib.rs"):
        assert (ROOT / path).exists() and not ignored(path), path
    # Files the binary embeds at compile time.
    for source in list((ROOT / "src").rglob("*.rs")) + list((ROOT / "emulator" / "src").rglob("*.rs")):
        for rel in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', source.read_text()):
            target = (source.parent / rel).resolve().relative_to(ROOT)
            assert not ignored(str(target)), f"{source}: embeds {target}, which .dockerignore excludes"
    assert ignored("target/debug/tycho") and ignored(".git/HEAD")


def test_build_is_locked_and_static():
    # The operator's image is built without the emulator (feature `dev`).
    assert "cargo build --locked --release --no-default-features --bin tycho" in DOCKERFILE
    assert "-unknown-linux-musl" in DOCKERFILE

#!/usr/bin/env python3
"""Pin python/Cargo.lock to the root Cargo.lock, and check that they agree.

The extension crate is a workspace of its own (see python/Cargo.toml), so it has a lock of its own.
`sync` writes the union of the root lock's packages and the packages only python/Cargo.lock has
(PyO3 and its build helpers); cargo then drops what the extension does not use, so every package
they share is built at the root's version. `check` fails, naming them, when a shared package's
versions differ.

    python3 python/sync_lock.py sync|check [ROOT_LOCK] [PYTHON_LOCK]
"""
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def blocks(text):
    """The lock's header and its [[package]] blocks, as text."""
    parts = text.split("\n[[package]]\n")
    return parts[0], ["[[package]]\n" + p.strip("\n") + "\n" for p in parts[1:]]


def versions(path):
    data = tomllib.loads(path.read_text())
    out = {}
    for p in data.get("package", []):
        out.setdefault(p["name"], set()).add(p["version"])
    return out


def sync(root, ours):
    header, root_blocks = blocks(root.read_text())
    root_names = {tomllib.loads(b)["package"][0]["name"] for b in root_blocks}
    extra = []
    if ours.exists():
        _, our_blocks = blocks(ours.read_text())
        for b in our_blocks:
            if tomllib.loads(b)["package"][0]["name"] not in root_names:
                extra.append(b)
    ours.write_text(header.rstrip("\n") + "\n\n" + "\n".join(root_blocks + extra))


def check(root, ours):
    r, o = versions(root), versions(ours)
    bad = sorted(
        f"{n}: root {sorted(r[n])}, python {sorted(o[n])}"
        for n in set(r) & set(o)
        if not o[n] <= r[n] and n != "tycho-python"
    )
    if bad:
        print("python/Cargo.lock differs from Cargo.lock (run python3 python/sync_lock.py sync):")
        print("\n".join("  " + b for b in bad))
        return 1
    print(f"python/Cargo.lock agrees with Cargo.lock on {len(set(r) & set(o))} shared packages")
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("sync", "check"):
        print(__doc__)
        return 2
    root = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE.parent / "Cargo.lock"
    ours = Path(sys.argv[3]) if len(sys.argv) > 3 else HERE / "Cargo.lock"
    if sys.argv[1] == "sync":
        sync(root, ours)
        return 0
    return check(root, ours)


if __name__ == "__main__":
    sys.exit(main())

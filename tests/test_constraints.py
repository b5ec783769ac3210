"""Pinned, reproducible installs: every dependency the project declares is pinned in
constraints.txt (the Makefile installs with `pip -c constraints.txt`), linters included."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# pip freeze leaves the installer's own tools out; pip's resolver picks them in the build.
UNPINNED = {"setuptools", "wheel", "pip"}


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), line
        out[canonicalize_name(name)] = version
    return out


def test_every_declared_dependency_is_pinned_and_allowed_by_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pinned = pins()
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in UNPINNED:
            continue
        assert name in pinned, f"{req.name} is not pinned in constraints.txt (make lock)"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{req.name}=={pinned[name]} is outside {req.specifier} (make lock)"
        )


def test_the_makefile_installs_with_the_constraints() -> None:
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()

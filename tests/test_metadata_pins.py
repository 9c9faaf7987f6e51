"""The bundle's version pins (configs/metadata.json) agree with the package's requirements (pyproject.toml).

The Model Zoo installs ``pytorch_version``, ``monai_version``, ``numpy_version`` and
``required_packages_version`` exactly as pinned, so every pin must fall inside the range that
pyproject.toml's ``dependencies`` allow, and ``c2s-monai`` must be the version this repository builds.
The pins are chosen to have wheels for every Python that ``requires-python`` admits and the Zoo's CI
runs (3.10 and 3.11); that is checked when the pins change (issue 16 item 4), not here (it needs an index).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT / "bundle" / "configs" / "metadata.json"
PYPROJECT = ROOT / "pyproject.toml"


def _normalise(name: str) -> str:
    """Package names compared case-, dash-, dot- and underscore-insensitively (PEP 503)."""
    return canonicalize_name(name)


def pin_problems(metadata: dict, pyproject: dict) -> list[str]:
    """Every way in which ``metadata``'s pins disagree with ``pyproject``'s requirements (empty when they agree)."""
    project = pyproject["project"]
    requirements = {}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        requirements[_normalise(requirement.name)] = requirement
    own_name = _normalise(project["name"])

    pins: list[tuple[str, str, str]] = [
        ("pytorch_version", "torch", metadata["pytorch_version"]),
        ("monai_version", "monai", metadata["monai_version"]),
        ("numpy_version", "numpy", metadata["numpy_version"]),
    ]
    pins += [(f"required_packages_version[{name!r}]", name, version) for name, version in metadata["required_packages_version"].items()]

    problems = []
    for key, name, version in pins:
        try:
            parsed = Version(version)
        except Exception as e:  # noqa: BLE001 - any unparsable pin is reported
            problems.append(f"{key}: {version!r} is not a version ({e})")
            continue
        if _normalise(name) == own_name:
            if parsed != Version(project["version"]):
                problems.append(f"{key}: {version} is not pyproject's version {project['version']}")
            continue
        requirement = requirements.get(_normalise(name))
        if requirement is None:
            problems.append(f"{key}: {name} is not among pyproject's dependencies")
        elif not requirement.specifier.contains(parsed, prereleases=True):
            problems.append(f"{key}: {version} does not satisfy pyproject's {requirement}")

    numpy_pins = {_normalise(n): v for n, v in metadata["required_packages_version"].items()}
    if "numpy" in numpy_pins and numpy_pins["numpy"] != metadata["numpy_version"]:
        problems.append(f"numpy_version {metadata['numpy_version']} differs from required_packages_version's numpy {numpy_pins['numpy']}")
    return problems


def _load() -> tuple[dict, dict]:
    return json.loads(METADATA.read_text()), tomllib.loads(PYPROJECT.read_text())


def test_metadata_pins_satisfy_the_pyproject_requirements():
    metadata, pyproject = _load()
    assert pin_problems(metadata, pyproject) == []


def test_metadata_pins_every_runtime_dependency():
    """Each of pyproject's dependencies has a pin, so the Zoo installs the versions tested."""
    metadata, pyproject = _load()
    pinned = {_normalise(n) for n in metadata["required_packages_version"]} | {"torch", "monai", "numpy"}
    missing = [r for r in pyproject["project"]["dependencies"] if _normalise(Requirement(r).name) not in pinned]
    assert missing == []


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda m: m.update(pytorch_version="2.7.0"), "pytorch_version: 2.7.0 does not satisfy"),
        (lambda m: m.update(monai_version="1.7.0"), "monai_version: 1.7.0 does not satisfy"),
        (lambda m: m.update(numpy_version="1.23.5"), "numpy_version: 1.23.5 does not satisfy"),
        (lambda m: m["required_packages_version"].update({"c2s-monai": "9.9.9"}), "is not pyproject's version"),
        (lambda m: m["required_packages_version"].update({"scikit-image": "0.21.0"}), "'scikit-image'"),
        (lambda m: m["required_packages_version"].update({"not-a-dependency": "1.0"}), "is not among pyproject's dependencies"),
        (lambda m: m["required_packages_version"].update({"tqdm": "latest"}), "is not a version"),
        (lambda m: m["required_packages_version"].update({"NumPy": "2.0.0"}), "differs from required_packages_version's numpy"),
    ],
)
def test_metadata_pins_check_catches_a_bad_pin(edit, expected):
    metadata, pyproject = _load()
    edit(metadata)
    problems = pin_problems(metadata, pyproject)
    assert any(expected in p for p in problems), problems


def test_metadata_pins_names_match_case_and_underscore_insensitively():
    metadata, pyproject = _load()
    pins = metadata["required_packages_version"]
    pins["Scikit_Image"] = pins.pop("scikit-image")
    pins["pywavelets"] = pins.pop("PyWavelets")
    assert pin_problems(metadata, pyproject) == []

"""docs/config-keys.md: every top-level bundle key, where it is defined and which component consumes it.

The page is generated from the configs; this test fails when it is out of date. Regenerate with
``python tests/test_config_keys_doc.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
PAGE = REPO / "docs" / "config-keys.md"
ORDER = ("inference.json", "train.json", "evaluate.json", "train_multicontrast.json",
         "inference_multicontrast.json", "multi_gpu_train.json", "multi_gpu_inference.json", "persistent_cache.json")
HEADER = """# Bundle config keys: where each is defined and what consumes it

Generated from `bundle/configs/*.json` by `python tests/test_config_keys_doc.py` (the test suite
checks that this page is up to date). A key is overridden on the command line as
`--key value` (`python -m monai.bundle run ... --flips 4`).
"Consumed by" names the component and argument that
receive the value (`@key` references), or the config item built from it. A key that
`train.json` and `inference.json` both define holds the same value in both (a test checks it;
the few deliberate differences are listed in `tests/test_bundle.py`). Defaults of the
Python API are the same values (`c2s_monai/defaults.py`).
"""


def _strings(obj, path, target, out):
    if isinstance(obj, dict):
        target = obj.get("_target_", target) if "_target_" in obj else None
        for key, value in obj.items():
            _strings(value, [*path, key], target if key != "_target_" else None, out)
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            _strings(value, [*path, str(index)], None, out)
    elif isinstance(obj, str):
        out.append((path, target, obj))


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else "(an expression or object)"


def generate() -> str:
    configs = {name: json.loads((CONFIGS / name).read_text()) for name in ORDER if (CONFIGS / name).is_file()}
    defined: dict[str, tuple[str, object]] = {}
    for name, content in configs.items():
        for key, value in content.items():
            if key == "imports" or key.startswith("+"):
                continue
            if key not in defined and not (isinstance(value, str) and value.startswith("%")):
                defined[key] = (name, value)
    rows = ["| key | defined in | value there | consumed by |", "|---|---|---|---|"]
    for key, (name, value) in sorted(defined.items(), key=lambda item: (ORDER.index(item[1][0]), item[0])):
        uses = set()
        for config, content in configs.items():
            found: list = []
            _strings(content, [], None, found)
            for path, target, text in found:
                if re.search(r"@" + re.escape(key) + r"(?![\w])", text):
                    where = "#".join(path)
                    uses.add(f"`{target.split('.')[-1]}({path[-1]}=)` in {config}" if target else f"`{where}` ({config})")
        fallback = "overrides that item of the configs merged before it" if "#" in key else "run by the bundle workflow (`--run`, `--initialize`, `--finalize`)" if key in ("initialize", "run", "finalize") else "read by the bundle workflow"
        rows.append(f"| `{key}` | {name} | `{_short(value)}` | {'; '.join(sorted(uses)) or fallback} |")
    return HEADER + "\n" + "\n".join(rows) + "\n"


def test_the_config_keys_page_is_up_to_date():
    assert PAGE.is_file() and PAGE.read_text() == generate(), "docs/config-keys.md is out of date: run python tests/test_config_keys_doc.py"


if __name__ == "__main__":
    PAGE.write_text(generate())
    print(f"wrote {PAGE}", file=sys.stderr)

"""`llmbulk.testing.emulated()` works with a plain install (no pytest); the fixture is the plugin's."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

# Runs in a fresh interpreter where importing pytest fails, as on an install without the test extra.
PROBE = """
import importlib.abc, json, sys, urllib.request

class NoPytest(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest"):
            raise ImportError(f"no module named {name!r} (blocked)")

sys.meta_path.insert(0, NoPytest())
from llmbulk.testing import emulated

with emulated() as server:
    request = urllib.request.Request(server.openai_base_url + "/batches",
                                     headers={"Authorization": "Bearer x"})
    body = json.load(urllib.request.urlopen(request, timeout=10))
print(json.dumps({"data": body["data"], "pytest": "pytest" in sys.modules}))
"""


def test_emulated_imports_and_runs_without_pytest() -> None:
    shown = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == '{"data": [], "pytest": false}'


def test_the_pytest11_entry_point_is_the_plugin_module() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "llmbulk"]
    assert plugin.value == "llmbulk.pytest_plugin"
    module = plugin.load()
    assert callable(module.llmbulk_emulator) and callable(module.pytest_configure)

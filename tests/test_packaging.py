"""The wheel ships only what runs in production: kiwoom_cache, publisher and api with their data files.

stack/ (the demo, the redis-server launcher, the balancers), scripts/, bench/ and tests/ are development
tooling used from a checkout; the 32-bit Windows publisher must not install them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {"kiwoom_cache", "publisher", "api"}
# Copied so the build's build/ and *.egg-info never land in (or race on) the checkout.
SKIP = shutil.ignore_patterns(".git", ".venv*", ".demo", "build", "*.egg-info", "__pycache__", ".*_cache",
                              "test-artifacts", "node_modules")


def build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("kiwoom_cache-*.whl")
    return wheel


def test_wheel_holds_only_the_production_packages(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == SHIPPED, f"unexpected top-level entries: {top - SHIPPED}"
    assert not [n for n in names if "localredis" in n or n.startswith(("stack/", "scripts/", "tests/", "bench/"))]
    # The data files production needs are in: the dashboard, the sample recording, type markers.
    assert "api/static/index.html" in names
    assert "publisher/recordings/sim-sample.jsonl" in names
    assert "kiwoom_cache/py.typed" in names

    # Installed from the wheel, with no checkout and no site-packages (-I -S) on the path: no dev tooling.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = (f"import sys, importlib.util as u; sys.path.insert(0, {str(site)!r}); "
             "print(sorted(m for m in ('stack', 'kiwoom_cache', 'publisher', 'api') if u.find_spec(m)))")
    found = subprocess.run([sys.executable, "-I", "-S", "-c", probe], cwd=tmp_path, check=True, capture_output=True,
                           text=True).stdout.strip()
    assert found == str(sorted(SHIPPED))
    assert not (site / "kiwoom_cache" / "localredis.py").exists()

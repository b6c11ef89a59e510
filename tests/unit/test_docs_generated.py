"""The generated parts of README.md and docs/ (the model zoo, the training options) are what
tools/gen_docs.py writes from the code now, and its --check catches a page that drifted."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

GENERATOR = ROOT / "tools" / "gen_docs.py"
REGENERATE = "python tools/gen_docs.py"
PAGES = ("README.md", "docs/model-zoo.md", "docs/training-options.md")  # configs/ is copied whole


def _gen_docs(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), "--root", str(root), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_generated_pages_match_the_code():
    run = _gen_docs(ROOT, "--check")
    assert run.returncode == 0, (f"README.md or docs/ no longer match the code: run {REGENERATE} and commit the "
                                 f"result.\n{run.stdout}{run.stderr}")


@pytest.mark.slow
def test_check_names_a_drifted_page_and_the_command_that_fixes_it(tmp_path):
    for page in PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, tmp_path / page)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")  # its README lists the recipe files
    readme = tmp_path / "README.md"
    text = readme.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `shufflenet_v2_x1_0` |"))
    readme.write_text(text.replace(row, row.replace("69.47", "70.00")))

    run = _gen_docs(tmp_path, "--check")
    assert run.returncode == 1
    assert run.stdout.strip() == f"out of date: {readme}"
    assert REGENERATE in run.stderr

    assert _gen_docs(tmp_path).returncode == 0  # rewrites the region, and only it
    assert readme.read_text() == text
    options = tmp_path / "docs" / "training-options.md"
    options.write_text("# Training options\n")
    run = _gen_docs(tmp_path, "--check")
    assert run.returncode == 2
    assert "training-options.md: needs exactly one generated region 'training-options'" in run.stderr

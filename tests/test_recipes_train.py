"""Every shipped recipe trains on the CPU: loaded, checked, built and run for two steps with small images
by scripts/try_configs.py (two processes side by side, half of the files each)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").rglob("*.yaml"))


def write_small_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    # 8 validation images: whole batches of try_configs' 4, so validation compiles one graph, not two.
    for split, classes in (("train", 10), ("val", 8)):
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)).save(folder / "0.png")
    return root


@pytest.mark.slow
def test_every_recipe_trains_two_steps_on_the_cpu(tmp_path):
    data = write_small_folder(tmp_path / "images")
    halves = [RECIPES[0::2], RECIPES[1::2]]
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scripts" / "try_configs.py"), "--data_dir", str(data),
                               *map(str, half)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for half in halves]
    outputs = [p.communicate(timeout=3000)[0] for p in procs]
    report = "\n".join(outputs)
    assert all(p.returncode == 0 for p in procs), report[-5000:]
    ok = [line for line in report.splitlines() if line.startswith("ok ")]
    assert len(ok) == len(RECIPES) > 50, report[-3000:]

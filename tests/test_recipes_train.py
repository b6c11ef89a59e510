"""Every shipped recipe trains on the CPU: loaded, checked, built and run for two steps with small images
by scripts/try_configs.py (in four shards, one process each)."""

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


SHARDS = 4  # one try_configs process per shard; pytest-xdist runs shards side by side with other tests


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_recipe_trains_two_steps_on_the_cpu(tmp_path, shard):
    recipes = RECIPES[shard::SHARDS]
    data = write_small_folder(tmp_path / "images")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "try_configs.py"), "--data_dir", str(data),
                           *map(str, recipes)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=3000)
    assert proc.returncode == 0, proc.stdout[-5000:]
    ok = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(ok) == len(recipes) > 10, proc.stdout[-3000:]


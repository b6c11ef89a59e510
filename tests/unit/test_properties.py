"""Property-based tests: any key/value map gives a Config or a ConfigError naming a key (never another
exception), and the image transforms give the promised shape for any image size and mode."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mindcv_shufflenet.config import OPTION_BY_NAME, OPTIONS, Config, ConfigError, finalize, load_config, load_yaml

KEYS = sorted(OPTION_BY_NAME)
YAML_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["graph", "O2", "cosine_decay", "momentum", "shufflenet_v2_x0_5", "auto",
                                           "1e-4", "true", "none", "latest_k", "CE", "bicubic"]),
)
VALUES = st.one_of(YAML_SCALARS, st.lists(YAML_SCALARS, max_size=4), st.dictionaries(st.text(max_size=4),
                                                                                       YAML_SCALARS, max_size=2))
# Keys mostly valid (so that checks beyond "unknown key" are reached), sometimes misspelt.
KEY = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS).map(lambda k: k[:-1]), st.text(min_size=1, max_size=10))
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _names_a_key(message: str) -> bool:
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    return bool(words & set(KEYS)) or "unknown key" in message


@FAST
@given(st.dictionaries(KEY, VALUES, max_size=6))
def test_any_key_value_map_gives_a_config_or_a_config_error_naming_a_key(values):
    values = {"model": "shufflenet_v2_x0_5", **values}
    try:
        cfg = finalize(values)
    except ConfigError as err:
        assert _names_a_key(str(err)), str(err)
        assert "\n" not in str(err)
        return
    assert isinstance(cfg, Config)
    # A valid configuration survives saving and reading back unchanged.
    again = finalize(yaml.safe_load(yaml.safe_dump(cfg.as_dict())))
    assert again.as_dict() == cfg.as_dict()


@FAST
@given(st.sampled_from([o for o in OPTIONS if o.name != "model"]), st.text(max_size=15))
def test_any_command_line_text_gives_a_config_or_a_config_error(option, text):
    if text.startswith("-"):
        text = " " + text  # argparse would read it as another option
    try:
        cfg = load_config(["--model", "shufflenet_v2_x0_5", f"--{option.name}", text])
    except ConfigError as err:
        assert _names_a_key(str(err)), str(err)
        return
    assert isinstance(cfg, Config)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_any_file_content_gives_a_mapping_or_a_config_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("yaml") / "recipe.yaml"
    path.write_bytes(content)
    try:
        data = load_yaml(str(path))
    except ConfigError as err:
        assert str(path) in str(err)
        return
    assert isinstance(data, dict)


# ----------------------------------------------------------------------------------------------- transforms

MODES = ["RGB", "L", "LA", "P", "RGBA", "CMYK", "I;16", "1"]


def _encoded(width: int, height: int, mode: str, fmt: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray((rng.integers(0, 65535, (height, width))).astype(np.uint16))
    elif mode != "RGB":
        image = image.convert(mode)
    if fmt == "JPEG" and mode in ("LA", "P", "RGBA", "I;16"):
        fmt = "PNG"  # JPEG cannot hold these
    if fmt == "PNG" and mode == "CMYK":
        fmt = "JPEG"  # nor PNG this one
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return np.frombuffer(buffer.getvalue(), np.uint8)


SIZES = st.one_of(st.tuples(st.integers(1, 40), st.integers(1, 40)),
                  st.tuples(st.just(1), st.integers(1, 600)), st.tuples(st.integers(1, 600), st.just(1)),
                  st.tuples(st.integers(300, 900), st.integers(1, 3)))


@settings(max_examples=80, deadline=None)
@given(SIZES, st.sampled_from(MODES), st.sampled_from(["PNG", "JPEG", "BMP", "TIFF"]), st.integers(0, 3),
       st.integers(1, 40))
def test_training_transforms_give_the_requested_size_for_any_image(size, mode, fmt, seed, out):
    import mindspore.dataset as ds

    from mindcv_shufflenet.data.transforms import train_transforms

    if fmt == "BMP" and mode in ("LA", "I;16", "CMYK"):
        fmt = "PNG"
    data = _encoded(*size, mode, fmt, seed)
    ops = train_transforms(out, hflip=0.5, color_jitter=0.3, mean=(0, 0, 0), std=(1, 1, 1))
    ds.config.set_seed(seed + 1)
    result = data
    for op in ops:
        result = op(result)
    assert result.shape == (3, out, out) and result.dtype == np.float32
    assert np.isfinite(result).all() and result.min() >= 0 and result.max() <= 255


@settings(max_examples=60, deadline=None)
@given(SIZES, st.sampled_from(MODES), st.integers(1, 32), st.floats(0.3, 1.0))
def test_evaluation_transforms_give_the_requested_size_for_any_image(size, mode, out, crop_pct):
    from mindcv_shufflenet.data.transforms import eval_transforms

    result = _encoded(*size, mode, "PNG", 0)
    for op in eval_transforms(out, crop_pct=crop_pct):
        result = op(result)
    assert result.shape == (3, out, out) and np.isfinite(result).all()


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_is_readable_after_the_listing_check(tmp_path, mode):
    from mindcv_shufflenet.data.folders import unreadable_reason

    path = tmp_path / "image.png"
    path.write_bytes(_encoded(7, 5, mode, "PNG", 0).tobytes())
    assert unreadable_reason(path) is None

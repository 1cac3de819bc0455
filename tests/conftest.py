"""Shared test setup: deterministic hypothesis profile, headless matplotlib, seeded torch,
GPU tests skipped without CUDA, and the TOFU data directory (NPO_TOFU_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
# One cache of trained tiny models per checkout, whatever the cwd (notebook kernels too).
os.environ.setdefault("NPO_CACHE_DIR", str(ROOT / ".npo-cache"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist each worker gets one core: threads would only contend, and the
    # environment carries the limit to subprocesses and notebook kernels.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
    yield


# Tests that fill the same cache under $NPO_CACHE_DIR run on one pytest-xdist worker, one
# after another: the second finds what the first trained instead of racing it. Keys are test
# files, or node-id fragments (a notebook's parameter).
CACHE_GROUPS = {
    "transformer-cache": (
        "test_transformer_task.py",
        "test_transformer_privacy.py",
        "[04_small_transformer]",
    ),
    "real-model-cache": (
        "test_gguf.py",
        "test_real_model.py",
        "test_real_knowledge.py",
        "test_real_tofu.py",
        "[06_smollm2_knowledge]",
    ),
}


def _xdist_group(item) -> str:
    for group, keys in CACHE_GROUPS.items():
        if any(key == item.path.name or key in item.nodeid for key in keys):
            return group
    return item.path.name  # otherwise by file, so module fixtures are built once


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    cuda = torch.cuda.is_available()
    for item in items:
        if not any(m.name == "xdist_group" for m in item.iter_markers()):
            item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
        if "gpu" in item.keywords and not cuda:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tofu_dir() -> Path:
    """The real TOFU data (``NPO_TOFU_DIR``, default ``../shared/data/tofu``); skip if absent."""
    from npo.llm.data import tofu_dir as find_tofu

    try:
        return find_tofu()
    except ValueError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def one_thread():
    """Tiny models: threads only add contention on a 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mini_data(tofu_dir, tmp_path_factory) -> Path:
    """Ten real TOFU authors in TOFU format, the last one forgotten, per test module; one
    author's ``retain_perturbed`` rows and one row of each utility set."""
    from npo.llm.subset import write_tofu_subset

    dst = tmp_path_factory.mktemp("mini")
    return write_tofu_subset(
        tofu_dir, dst, authors=10, forget_authors=1, perturbed_authors=1, utility_items=1
    )


@pytest.fixture(scope="module")
def random_model(mini_data, tmp_path_factory) -> Path:
    """An untrained tiny Llama saved over :func:`mini_data`'s tokenizer, per test module."""
    from _llm import random_model_dir

    return random_model_dir(mini_data, tmp_path_factory.mktemp("random") / "model")


@pytest.fixture(scope="session")
def real_dir():
    """The converted model (cached); skip, or fail under NPO_REQUIRE_REAL_MODEL=1, without it."""
    from npo.llm.gguf import real_model_dir

    try:
        return real_model_dir()
    except ValueError as exc:
        if os.environ.get("NPO_REQUIRE_REAL_MODEL") == "1":
            pytest.fail(f"NPO_REQUIRE_REAL_MODEL=1 and the real model is unavailable: {exc}")
        pytest.skip(f"real model unavailable: {exc}")

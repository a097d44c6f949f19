"""Fixtures shared by test files."""

import pytest
from tiny_pipeline import make_tiny_pipeline  # tests/ is on sys.path under pytest


@pytest.fixture(scope="session", autouse=True)
def _config_dir(tmp_path_factory):
    """Outputs are signed with a local identity made on first use in the config directory: keep it
    in a temp folder, never in the real home."""
    import os

    old = os.environ.get("SPACETIME_CONFIG_DIR")
    os.environ["SPACETIME_CONFIG_DIR"] = str(tmp_path_factory.mktemp("spacetime-config"))
    yield
    if old is None:
        os.environ.pop("SPACETIME_CONFIG_DIR", None)
    else:
        os.environ["SPACETIME_CONFIG_DIR"] = old


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A complete pipeline directory with a tiny random model (tests/tiny_pipeline.py)."""
    return make_tiny_pipeline(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def bench_module(monkeypatch):
    """Import a script of bench/ by name (its folder on sys.path, as when run), for this test only."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).parent.parent / "bench"
    monkeypatch.syspath_prepend(str(bench))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", bench / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"bench_{name}", module)
        spec.loader.exec_module(module)
        return module

    return load

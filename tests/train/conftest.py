"""Fixtures of the training tests: a cache of the first QM9 molecules."""

from __future__ import annotations

import pytest

from qm9_testing import N_SUBSET


@pytest.fixture(scope="module")
def qm9_cache(tmp_path_factory):
    """A cache of the first molecules, used through $LIEQUIV_CACHE by the tasks (skipped without qm9pack)."""
    from liequiv.data import qm9

    try:
        qm9.qm9_data_dir()
    except ModuleNotFoundError:
        pytest.skip("qm9pack is not installed (pip install liequiv[qm9])")
    path = tmp_path_factory.mktemp("qm9-cache")
    qm9.load_qm9(max_molecules=N_SUBSET, cache_dir=path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIEQUIV_CACHE", str(path))
        yield path

"""Session-wide test settings: the tests never read or write the user's cache of generated data and kernels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liequiv import native


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$LIEQUIV_CACHE`` for the whole session (and the processes its tests start): a fresh directory, so that
    data sets are generated from scratch and the native kernels are compiled once per session, into it."""
    cache = tmp_path_factory.mktemp("liequiv_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIEQUIV_CACHE", str(cache))
        native._load.cache_clear()  # a kernel loaded while the tests were collected came from the old cache
        yield cache
    native._load.cache_clear()

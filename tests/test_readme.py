"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, capsys) -> None:
    exec(compile(BLOCKS[index], f"README block {index}", "exec"), {})
    if "check_equivariance" in BLOCKS[index]:
        assert capsys.readouterr().out.startswith("equivariant under E(3) x S_n")

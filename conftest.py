"""For every test: the user's data folder is a temporary one, so nothing a test starts (a ``sakura run`` with the
workbench's jobs folder, say) writes into the real home folder; and the objects earlier tests left are kept out
of the garbage collector's way while it runs."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sakura_core.testing.heap import frozen_heap


@pytest.fixture(scope="session", autouse=True)
def isolated_user_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """XDG_DATA_HOME points at a session temporary folder (inherited by every server the tests start)."""
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("user-data"))
    yield
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before


@pytest.fixture(autouse=True)
def heap_of_earlier_tests_frozen() -> Iterator[None]:
    """A full collection among the objects of the tests before (0.3–0.8 s late in the suite) does not land inside
    this test's timing checks (how long the event loop waited, a p99)."""
    with frozen_heap():
        yield

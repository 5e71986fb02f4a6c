"""For every test: the user's data folder is a temporary one, so nothing a test starts (a ``sakura run`` with the
workbench's jobs folder, say) writes into the real home folder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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

"""In CI a PostgreSQL test that cannot reach the server fails; elsewhere it is skipped."""

from __future__ import annotations

import pytest

from tests.helpers import postgres_unreachable


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_an_unreachable_server_fails_the_test(
    ci: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        postgres_unreachable(OSError("connection refused"))


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_it_is_skipped(ci: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        postgres_unreachable(OSError("connection refused"))

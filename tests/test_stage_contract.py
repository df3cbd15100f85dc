"""The command tail every stage shares (:func:`cxrpriv.stages.contract.exit_code`): exit codes and the logged
error."""

from __future__ import annotations

import logging

import pytest

from cxrpriv.stages.contract import exit_code

log = logging.getLogger("cxrpriv.test_command")


class BadInput(ValueError):
    pass


class Refused(BadInput):  # a refusal that is also an input error: the refusal wins
    pass


def _raise(exc: Exception):
    def run() -> None:
        raise exc

    return run


def test_a_run_that_returns_exits_0(caplog: pytest.LogCaptureFixture):
    calls = []
    assert exit_code(lambda: calls.append(1), log, (BadInput,)) == 0
    assert calls == [1] and not caplog.records


def test_an_input_error_exits_2_and_a_refusal_1_with_the_message_logged(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR, logger=log.name):
        assert exit_code(_raise(BadInput("data/x.parquet: no column y")), log, (BadInput,)) == 2
        assert exit_code(_raise(Refused("gate failed")), log, (BadInput,), refusals=(Refused,)) == 1
        described = exit_code(_raise(BadInput("bad")), log, (BadInput,), describe=lambda e: f"{e} (see r)")
    assert described == 2
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (log.name, "ERROR", "data/x.parquet: no column y"),
        (log.name, "ERROR", "gate failed"),
        (log.name, "ERROR", "bad (see r)"),
    ]


def test_any_other_error_propagates():
    with pytest.raises(KeyError):
        exit_code(_raise(KeyError("bug")), log, (BadInput,))

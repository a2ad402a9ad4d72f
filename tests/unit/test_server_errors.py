"""Every exception class of the package that a request can raise maps to an OpenAI-shaped
error with a deliberate status: none of them is a 500."""

from __future__ import annotations

import inspect

import pytest

from gpt4all_rag import errors
from gpt4all_rag.server.serving import api_error as _api_error

CLASSES = sorted((c for c in vars(errors).values()
                  if inspect.isclass(c) and issubclass(c, errors.GPT4AllRagError)),
                 key=lambda c: c.__name__)


def _make(cls: type[errors.GPT4AllRagError], message: str) -> errors.GPT4AllRagError:
    if cls is errors.ModelBusyError:
        return cls(message, reason="timeout")
    return cls(message)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_no_error_class_is_a_500(cls: type[errors.GPT4AllRagError]) -> None:
    error = _api_error(_make(cls, "what went wrong"))
    assert error.status in (400, 404, 502, 503), (cls, error.status)
    body = error.body()["error"]
    assert body["message"] == "what went wrong" and body["code"]
    assert body["type"] == ("server_error" if error.status >= 500 else "invalid_request_error")


def test_a_closed_or_busy_model_is_503_to_retry() -> None:
    assert _api_error(errors.ModelClosedError("evicted")).status == 503
    assert _api_error(errors.ModelBusyError("busy", reason="queue_full")).code == "model_busy"
    assert _api_error(errors.DownloadError("unreachable")).status == 502


def test_a_bug_stays_visible_as_500() -> None:
    assert _api_error(KeyError("x")).status == 500

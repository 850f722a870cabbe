"""observability.asgi.direct: the form of an ASGI app a layer keeps to call it per request."""

from __future__ import annotations

import functools
from typing import Any

from observability.asgi import direct

Message = dict[str, Any]


class Echo:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope)


class Inheriting(Echo):
    pass


async def function_app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def test_an_instance_becomes_its_call_bound_to_it() -> None:
    for app in (Echo(), Inheriting()):
        call = direct(app)
        assert call.__self__ is app  # type: ignore[attr-defined]
        await call({"type": "http"}, None, None)  # type: ignore[arg-type]
        assert app.seen == [{"type": "http"}]


def test_a_function_is_kept_as_it_is() -> None:
    assert direct(function_app) is function_app


def test_a_callable_written_in_c_is_kept_as_it_is() -> None:
    partial = functools.partial(function_app, {"type": "http"})
    assert direct(partial) is partial  # type: ignore[arg-type]

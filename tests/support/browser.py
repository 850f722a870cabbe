"""A headless person: follows an authorization URL, fills the login and consent forms, and
stops at the redirect back to the client (which it returns, unfollowed)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class Form(HTMLParser):
    """The first form of a page: its action and its fields (inputs and the buttons' names)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, list[str]] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action, self._in_form = values.get("action", ""), True
        elif self._in_form and tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")
        elif self._in_form and tag == "button" and "name" in values:
            self.buttons.setdefault(values["name"], []).append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def read_form(html: str) -> Form:
    form = Form()
    form.feed(html)
    return form


class Person:
    """Signs in as `username` and answers the consent page with `decision`."""

    def __init__(
        self, username: str, password: str, *, decision: str = "approve", timeout: float = 15
    ) -> None:
        self.username = username
        self.password = password
        self.decision = decision
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self.pages: list[str] = []  # every page seen, for the assertions of a test

    async def authorize(self, url: str, redirect_prefix: str) -> str:
        """Follow `url` until a redirect to `redirect_prefix`; return that redirect."""
        response = await self.http.get(url)
        for _ in range(20):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect_prefix):
                    return location
                response = await self.http.get(location)
                continue
            if response.status_code != 200 and "password" not in response.text:
                raise AssertionError(f"{response.status_code} at {response.url}: {response.text}")
            self.pages.append(response.text)
            form = read_form(response.text)
            fields = dict(form.fields)
            if "password" in fields:
                fields.update(username=self.username, password=self.password)
            elif "decision" in form.buttons:
                fields["decision"] = self.decision
            else:
                raise AssertionError(f"a page without a form at {response.url}")
            action = urljoin(str(response.url), form.action or "")
            response = await self.http.post(action, data=fields)
        raise AssertionError("too many steps")

    async def aclose(self) -> None:
        await self.http.aclose()

"""What every command shares: the settings of the run (URLs, key, tenant, output) and how a result
is printed (a table, or the API's JSON with ``--json``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import click

from cli.client import Api, ApiProblem, segment
from cli.output import table


@dataclass
class Settings:
    write_url: str
    read_url: str
    key: str | None = field(repr=False)  # never printed
    tenant: str | None
    timeout: float
    as_json: bool = False

    @cached_property
    def write(self) -> Api:
        return Api(self.write_url, self.key, self.timeout)

    @cached_property
    def read(self) -> Api:
        return Api(self.read_url, self.key, self.timeout)

    def tenant_path(self) -> str:
        """``/v1/tenants/{tenant}``; bad usage (exit 2) if no tenant was given."""
        if not self.tenant:
            raise click.UsageError("no tenant: give --tenant or set CSP_TRIAGE_TENANT")
        return f"/v1/tenants/{segment(self.tenant)}"


pass_settings = click.make_pass_decorator(Settings)


def _want_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Settings).as_json = True


def json_option(command: Callable) -> Callable:
    """``--json`` after a command, as well as before it (``csp-triage --json alerts list``)."""
    return click.option("--json", is_flag=True, expose_value=False, callback=_want_json,
                        help="Print the API's JSON (one document) instead of a table.")(command)


def emit(settings: Settings, document: Any, render: Callable[[Any], str]) -> None:
    """``document`` as JSON with ``--json``, else as ``render`` shows it."""
    click.echo(json.dumps(document, indent=2) if settings.as_json else render(document))


def each(settings: Settings, names: Iterable[str], act: Callable[[str], tuple[str, Any]],
         heading: str) -> None:
    """``act`` on each of ``names``, one request each, reporting every result (a table of ``heading``
    and RESULT, or with ``--json`` one document ``{"value": [{id, ok, answer | status and problem}]}``).
    A refusal is also one line on stderr, and makes the exit code 1 once all were tried."""
    rows, results, refused = [], [], 0
    for name in names:
        try:
            label, answer = act(name)
        except ApiProblem as problem:
            refused += 1
            click.echo(f"{name}: {problem.line}", err=True)
            rows.append([name, f"refused ({problem.status})"])
            results.append({"id": name, "ok": False, "status": problem.status, "problem": problem.body})
        else:
            rows.append([name, label])
            results.append({"id": name, "ok": True, "answer": answer})
    emit(settings, {"value": results}, lambda _: table([heading, "RESULT"], rows))
    if refused:
        raise click.exceptions.Exit(1)

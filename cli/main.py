"""``csp-triage``: the entry point. Global options, the command groups, and what an error becomes:
an API's problem is one line on stderr and exit code 1; an API that cannot be reached, exit code 2
naming its URL; bad usage, exit code 2 (click's)."""

from __future__ import annotations

import click

from cli.alerts import alerts
from cli.client import ApiProblem, Unreachable
from cli.context import Settings
from cli.deliveries import deliveries
from cli.keys import keys
from cli.tenant import response_time, score, tenant
from cli.webhook_secrets import webhook_secrets


class _Commands(click.Group):
    """The root group: turns what went wrong talking to an API into its line and exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ApiProblem as problem:
            keyless = problem.status == 401 and isinstance(ctx.obj, Settings) and not ctx.obj.key
            click.echo(problem.line + (" (no key given: set CSP_TRIAGE_API_KEY)" if keyless else ""), err=True)
            raise click.exceptions.Exit(1) from None
        except Unreachable as unreachable:
            click.echo(str(unreachable), err=True)
            raise click.exceptions.Exit(2) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--write-url", envvar="CSP_TRIAGE_WRITE_URL", default="http://127.0.0.1:8081", show_default=True,
              show_envvar=True, help="The write API.")
@click.option("--read-url", envvar="CSP_TRIAGE_READ_URL", default="http://127.0.0.1:8082", show_default=True,
              show_envvar=True, help="The read API.")
@click.option("--key", envvar="CSP_TRIAGE_API_KEY", show_envvar=True,
              help="The API key. Prefer the environment variable: a command line is visible to other users.")
@click.option("--tenant", envvar="CSP_TRIAGE_TENANT", show_envvar=True, help="The partner tenant to work on.")
@click.option("--timeout", envvar="CSP_TRIAGE_TIMEOUT", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, show_envvar=True, help="Seconds to wait for an API's answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON (one document) instead of a table.")
@click.version_option(package_name="csp-triage")
@click.pass_context
def cli(ctx: click.Context, write_url: str, read_url: str, key: str | None, tenant: str | None, timeout: float,
        as_json: bool) -> None:
    """Triage a partner's alerts from the command line: list, show, acknowledge, resolve, assign and
    note alerts, show their timelines, act on many at once; list and redeliver notifications; manage
    API keys and inbound webhook secrets; show the security score and the response time; export and
    offboard a tenant.

    It talks to the write API and the read API with a key, e.g.:

    \b
      export CSP_TRIAGE_API_KEY=...   CSP_TRIAGE_TENANT=contoso
      csp-triage alerts list --status active
      csp-triage alerts acknowledge alert-1 alert-2
      csp-triage alerts assign alert-1 --to ana@partner.example
      csp-triage --json score

    Exit codes: 0 done; 1 an API refused (its problem on stderr); 2 bad usage, or an API cannot be reached.
    """
    ctx.obj = Settings(write_url=write_url, read_url=read_url, key=key, tenant=tenant, timeout=timeout,
                       as_json=as_json)


cli.add_command(alerts)
cli.add_command(deliveries)
cli.add_command(keys)
cli.add_command(score)
cli.add_command(response_time)
cli.add_command(tenant)
cli.add_command(webhook_secrets)


def main() -> None:
    cli(prog_name="csp-triage")


if __name__ == "__main__":
    main()

"""The e-mails' wording: Jinja2 templates, three per e-mail (``<name>.subject.j2``, ``<name>.txt.j2``,
``<name>.html.j2``), shipped in ``services/notifier/templates/``. A deployment overrides any of them
with a file of the same name in NOTIFIER_TEMPLATE_DIR (searched first; the others stay the shipped
ones).

HTML is autoescaped (every template but ``*.txt.j2`` and ``*.subject.j2``, so a stray file is too);
an unknown variable is an error, not an empty string (StrictUndefined). ``check`` loads and renders
every template with sample data: the notifier runs it at start-up, so a broken template stops the
process there, naming the file, rather than failing each e-mail later. What each template receives
is built in ``domain`` (``alert_email_context``, ``spending_email_context``) and listed in
docs/notifier.md.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

EMAILS = ("alert", "spending", "warning", "digest")
PARTS = ("subject", "txt", "html")
_PLAIN = ("txt.j2", "subject.j2")  # every other template is HTML, autoescaped


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class TemplateProblem(Exception):
    """A template that cannot be loaded or rendered; the message names its file (and line)."""


class EmailTemplates:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self.shipped_dir = Path(__file__).with_name("templates")
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(self.shipped_dir)]
        if override_dir is not None:
            loaders.insert(0, jinja2.FileSystemLoader(override_dir))
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(disabled_extensions=_PLAIN, default_for_string=True, default=True),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # the templates checked at start-up are the ones used: an edit needs a restart
        )

    def render(self, email: str, context: Mapping[str, Any]) -> Rendered:
        return Rendered(*(self._render(f"{email}.{part}.j2", context) for part in PARTS))

    def check(self, samples: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Every template of every e-mail loaded and rendered with each sample context of it."""
        for email in EMAILS:
            for context in samples[email]:
                self.render(email, context)

    def overridden(self) -> list[str]:
        """The templates the override directory replaces."""
        return sorted(
            f"{email}.{part}.j2" for email in EMAILS for part in PARTS
            if self.override_dir is not None and (self.override_dir / f"{email}.{part}.j2").is_file()
        )

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self.environment.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"{exc.filename or self._file_of(name)}, line {exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateProblem(f"no template {exc.name} (looked in {self._places()})") from exc
        except Exception as exc:  # an unknown variable, a bad filter, a failing expression: all the file's
            file = self._file_of(name)
            raise TemplateProblem(f"{file}{_line_in(exc, file)}: {type(exc).__name__}: {exc}") from exc

    def _file_of(self, name: str) -> Path:
        if self.override_dir is not None and (self.override_dir / name).is_file():
            return self.override_dir / name
        return self.shipped_dir / name

    def _places(self) -> str:
        return ", ".join(str(d) for d in (self.override_dir, self.shipped_dir) if d is not None)


def _line_in(exc: BaseException, file: Path) -> str:
    """", line N" of the template's line where ``exc`` arose (Jinja puts it in the traceback), else ""."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == str(file)]
    return f", line {lines[-1]}" if lines else ""


@cache
def shipped() -> EmailTemplates:
    """The package's own templates, loaded once."""
    return EmailTemplates(None)

"""The Jinja2 environment for smartlondon's server-rendered pages.

Templates live in ``smartlondon/web/templates``; GOV.UK Frontend component
macros come from the ``govuk-frontend-jinja`` package and are imported with the
``govuk_frontend_jinja/`` prefix, as that package's documentation recommends::

    {% from "govuk_frontend_jinja/components/button/macro.html" import govukButton %}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import jinja2

__all__ = ["field_error_message", "make_environment"]


def field_error_message(errors: Mapping[str, str] | None, name: str) -> dict[str, str] | bool:
    """The ``errorMessage`` parameter for a GOV.UK form component, or ``False``.

    ``errors`` maps field names to messages. Exposed to templates through the
    ``field_error`` helper in ``macros/errors.html``.
    """
    if errors and errors.get(name):
        return {"text": str(errors[name])}
    return False


def make_environment(extra_loaders: Sequence[jinja2.BaseLoader] = ()) -> jinja2.Environment:
    """A Jinja2 environment for smartlondon pages.

    ``extra_loaders`` take precedence over the packaged templates (for tests or
    deployment-specific overrides).
    """
    loader = jinja2.ChoiceLoader(
        [
            *extra_loaders,
            jinja2.PackageLoader("smartlondon.web", "templates"),
            jinja2.PrefixLoader({"govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        # govuk-frontend-jinja's macros are .html and rely on autoescaping.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.Undefined,  # the GOV.UK macros test for missing params
        # govuk-frontend-jinja needs no Jinja extensions.
    )
    env.globals["field_error_message"] = field_error_message
    return env

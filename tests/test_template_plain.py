"""The plain-template renderer gives exactly what Jinja gives, and declines what it cannot render."""

from __future__ import annotations

import pytest
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from llmbulk.template_plain import plain_renderer

ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
PLAIN = [
    "Classify: {{ text }}", "{{ a }}{{ b }}", "x\r\ny {{ a }}\n", "{{a}} and {{ b }} end\n\n", "{{ text }}",
    "plain", "", "{{ a }} {{ a }}", "{{ range }}", "{# note #}{{ a }}", "{{ loop }}", "{% raw %}{{ a }}{% endraw %}",
    "{{ a }}{{ missing }}", "{{- a -}}  x", "a\n{{ a }}\n  b",
]  # fmt: skip
NOT_PLAIN = ["{{ a|upper }}", "{% if a %}{{ a }}{% endif %}", "{{ a.b }}", "{{ None }}", "{{ a ~ b }}", "{{ f(a) }}"]
VALUES = ["s", "", 1, 1.5, None, True, [1, "x"], {"k": 1}, Markup("<b>"), "ü\r\n", 10**30, float("nan")]


def _jinja(source: str, row: dict[str, object]) -> object:
    try:
        return ENV.from_string(source).render(row)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("source", PLAIN)
def test_plain_templates_render_as_jinja_does(source: str) -> None:
    render = plain_renderer(ENV.parse(source))
    assert render is not None
    for a in VALUES:
        for b in VALUES[:3]:
            row = {"text": a, "a": a, "b": b}
            got = render(row)
            if got is None:  # a name the row lacks: the caller asks Jinja
                assert "missing" in source or "range" in source or "loop" in source
                continue
            assert got == _jinja(source, row), (source, row)


@pytest.mark.parametrize("source", NOT_PLAIN)
def test_other_templates_are_left_to_jinja(source: str) -> None:
    assert plain_renderer(ENV.parse(source)) is None


def test_a_missing_column_is_left_to_jinja_for_its_error() -> None:
    render = plain_renderer(ENV.parse("Say {{ text }}"))
    assert render is not None
    assert render({"other": "x"}) is None
    assert render({"text": None}) == "Say None"

"""The templates read the environment's globals through a read-only view (hub.app._Templates, issue 17 P7): what
a template, an imported macro and a template with globals of its own see is what Jinja's ChainMap showed."""

import pytest
from flask import render_template_string


def test_a_template_sees_a_global_added_after_it_was_loaded(app, monkeypatch):
    template = app.jinja_env.from_string("{{ late_global|default('none') }}")
    with app.test_request_context("/"):
        assert render_template_string("{{ late_global|default('none') }}") == "none"
        assert template.render() == "none"
        monkeypatch.setitem(app.jinja_env.globals, "late_global", "seen")
        assert template.render() == "seen"


def test_an_imported_macro_reads_the_globals(app, monkeypatch):
    monkeypatch.setitem(app.jinja_env.globals, "greeting", "bonjour")
    macros = app.jinja_env.from_string("{% macro hello(name) %}{{ greeting }} {{ name }}{% endmacro %}")
    page = app.jinja_env.from_string("{% from macros import hello %}{{ hello('Marie') }}")
    with app.test_request_context("/"):
        assert page.render(macros=macros) == "bonjour Marie"
        assert page.render(macros=macros) == "bonjour Marie"  # the module kept for the next render


def test_a_template_of_its_own_globals_overlays_the_environments_and_keeps_them_to_itself(app, monkeypatch):
    monkeypatch.setitem(app.jinja_env.globals, "shared", "environment")
    own = app.jinja_env.from_string("{{ shared }} {{ mine }}", globals={"mine": "template"})
    other = app.jinja_env.from_string("{{ shared }} {{ mine|default('none') }}")
    assert own.render() == "environment template"
    assert other.render() == "environment none"
    assert "mine" not in app.jinja_env.globals


def test_a_templates_shared_globals_cannot_be_written_through_it(app):
    template = app.jinja_env.from_string("")
    with pytest.raises(TypeError):
        template.globals["written"] = True  # type: ignore[index]
    assert "written" not in app.jinja_env.globals

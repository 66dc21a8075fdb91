"""Templates: rendering, filters, the sandbox, and the bounds on work."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from rotor.values import InvalidSpec, TemplateError, render_templates
from rotor.values.template import MAX_RANGE_ITEMS, MAX_STEPS, MAX_TEMPLATE_BYTES

VALUES = {
    "username": b"app",
    "password": b"p@ss:w/rd &?=#",
    "tls.crt": b"CERTIFICATE",
    "keystore": b"\xff\x00\xfe",
    "config": b'{"hosts": ["a", "b"], "port": 5432}',
}


def render(source: str, values: dict[str, bytes] | None = None, **kwargs: object) -> bytes:
    return render_templates({"out": source}, VALUES if values is None else values, **kwargs)["out"]  # type: ignore[arg-type]


def failure(source: str, values: dict[str, bytes] | None = None, **kwargs: object) -> str:
    with pytest.raises(TemplateError) as caught:
        render(source, values, **kwargs)
    assert caught.value.reason == "TemplateError"
    assert "template 'out'" in caught.value.message
    return caught.value.message


def test_the_database_url_example_from_the_design() -> None:
    rendered = render_templates(
        {"DATABASE_URL": "postgresql://{{ username }}:{{ password | urlencode }}@db:5432/app"}, VALUES
    )
    assert rendered == {"DATABASE_URL": b"postgresql://app:p%40ss%3Aw%2Frd%20%26%3F%3D%23@db:5432/app"}


def test_several_templates_render_to_their_own_keys() -> None:
    rendered = render_templates({"a": "{{ username }}", "b": "{{ username | upper }}"}, VALUES)
    assert rendered == {"a": b"app", "b": b"APP"}


def test_keys_that_are_not_identifiers_are_reached_through_values() -> None:
    assert render("{{ values['tls.crt'] }}/{{ values.username }}") == b"CERTIFICATE/app"


def test_binary_values_keep_their_bytes_through_b64enc_and_sha256() -> None:
    assert render("{{ keystore | b64enc }}") == base64.b64encode(VALUES["keystore"])
    assert render("{{ keystore | sha256 }}") == hashlib.sha256(VALUES["keystore"]).hexdigest().encode()


def test_b64dec_and_b64enc_round_trip_text() -> None:
    assert render("{{ username | b64enc | b64dec }}") == b"app"


def test_json_filters() -> None:
    assert render("{{ (config | fromjson).hosts | join(',') }}:{{ (config | fromjson).port }}") == b"a,b:5432"
    assert json.loads(render('{"p": {{ password | tojson }}}')) == {"p": VALUES["password"].decode()}
    assert json.loads(render('{"p": "{{ password | json_escape }}"}', {"password": b'q"\\\n'})) == {
        "p": 'q"\\\n'
    }


def test_loops_conditions_and_set_work() -> None:
    source = (
        "{% set hosts = (config | fromjson).hosts %}"
        "{% for h in hosts %}{{ h }}{% if not loop.last %};{% endif %}{% endfor %}"
        "{% with n = hosts | length %}={{ n }}{% endwith %}"
    )
    assert render(source) == b"a;b=2"


def test_trailing_newline_is_kept() -> None:
    assert render("{{ username }}\n") == b"app\n"


def test_a_missing_variable_is_an_error_naming_it() -> None:
    message = failure("line one\n{{ pasword }}")
    assert "UndefinedError" in message
    assert "'pasword' is undefined" in message
    assert "line 2" in message


def test_a_missing_key_in_values_is_an_error() -> None:
    assert "has no attribute 'nope'" in failure("{{ values.nope }}")


def test_a_syntax_error_names_the_line() -> None:
    message = failure("ok\n{{ username }\n")
    assert "TemplateSyntaxError" in message
    assert "line 2" in message


def test_an_unknown_filter_is_refused() -> None:
    assert "random" in failure("{{ [1, 2] | random }}")


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ username.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ self.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ range.__globals__ }}",
        "{{ values.__class__.__base__ }}",
        "{{ (1).__class__.__mro__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ namespace() }}",
        "{% set d = {} %}{{ d.update({'a': 1}) }}",
        "{% set l = [] %}{{ l.append(1) }}",
        "{{ username | attr('__class__') }}",
        "{{ ''['__class__'] }}",
        "{{ '{0.__class__}'.format(username) }}",
    ],
)
def test_sandbox_escapes_are_refused(escape: str) -> None:
    failure(escape)


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        ("{% macro m() %}x{% endmacro %}{{ m() }}", "macro"),
        ("{% filter upper %}x{% endfilter %}", "filter"),
        ("{% set x %}y{% endset %}", "set ... endset"),
        ("{% block b %}x{% endblock %}", "block"),
        ("{% include 'other' %}", "include"),
        ("{% import 'other' as o %}", "import"),
        ("{% extends 'base' %}", "extends"),
    ],
)
def test_constructs_that_buffer_or_load_are_refused(source: str, tag: str) -> None:
    assert f"{{% {tag} %}}" in failure(source)


def test_a_large_range_is_refused() -> None:
    assert render(f"{{{{ range({MAX_RANGE_ITEMS}) | length }}}}") == str(MAX_RANGE_ITEMS).encode()
    assert f"range of more than {MAX_RANGE_ITEMS}" in failure(
        f"{{{{ range({MAX_RANGE_ITEMS + 1}) | list }}}}"
    )


def test_a_huge_loop_is_stopped_by_the_step_budget() -> None:
    message = failure("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}")
    assert f"more than {MAX_STEPS}" in message


def test_output_over_the_limit_is_refused() -> None:
    assert "over the 1000-byte limit" in failure(
        "{% for i in range(2000) %}x{% endfor %}", max_output_bytes=1000
    )


def test_the_output_limit_counts_all_templates_together() -> None:
    templates = {"a": "{{ 'x' * 600 }}", "b": "{{ 'y' * 600 }}"}
    with pytest.raises(TemplateError) as caught:
        render_templates(templates, VALUES, max_output_bytes=1000)
    assert "template 'b'" in caught.value.message
    assert render_templates({"a": templates["a"]}, VALUES, max_output_bytes=1000)["a"] == b"x" * 600


@pytest.mark.parametrize(
    "bomb",
    [
        "{{ 'a' * 2000000 }}",
        "{{ password * 10000000 }}",
        "{{ 'a' | center(1000000000) }}",
        "{{ password.center(1000000000) }}",
        "{{ password.ljust(1000000000) }}",
        "{{ password.zfill(1000000000) }}",
        "{{ '\t\t'.expandtabs(1000000000) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:>{w}}'.format(1, w=999999999) }}",
        "{{ '%999999999d' | format(1) }}",
        "{{ 2 ** 100000000 }}",
        "{% set big = password * 60000 %}{{ ('{0}' * 20).format(big) }}",
        "{% set big = password * 60000 %}{{ ('%(a)s' * 20) % {'a': big} }}",
        "{% set big = password * 60000 %}{{ ('%(a)s' * 20) | format(a=big) }}",
        "{{ (password * 50000) | replace('', password * 50000) }}",
        "{{ [password] * 1000000 }}",
        "{{ password | indent(1000000000) }}",
        "{{ range(10) | batch(1000000000, 'x') | list }}",
        "{% set big = password * 60000 %}{{ [big, big, big, big, big, big, big, big] }}",
        "{% set big = password * 60000 %}{{ [big, big, big, big, big, big, big, big] | join }}",
        "{% set big = password * 60000 %}{{ ''.join([big, big, big, big, big, big, big, big]) }}",
        "{% set big = password * 60000 %}{{ big ~ big ~ big ~ big ~ big ~ big ~ big ~ big }}",
        "{% set big = password * 60000 %}{{ [big, big, big, big, big, big, big, big] | tojson }}",
        "{% set big = password * 60000 %}{{ [big, big, big, big, big, big, big, big] | string }}",
    ],
)
def test_expressions_that_would_build_huge_values_are_refused(bomb: str) -> None:
    message = failure(bomb)
    assert "limit exceeded" in message
    assert "the output is over" not in message  # refused before it was built, not when printed


def test_copies_inside_a_loop_are_bounded_by_the_total_work() -> None:
    source = "{% set big = password * 60000 %}{% for i in range(100) %}{% set c = big | upper %}{% endfor %}"
    assert "bytes built while rendering" in failure(source)


def test_rendering_stops_at_the_time_limit() -> None:
    ticks = iter(range(1_000_000))

    def clock() -> float:
        return float(next(ticks))

    message = failure("{% for i in range(100) %}{{ i }}{% endfor %}", clock=clock, time_limit_seconds=50)
    assert "time limit" in message


def test_a_template_over_the_source_limit_is_refused() -> None:
    assert "longer than" in failure("x" * (MAX_TEMPLATE_BYTES + 1))


def test_a_template_key_must_be_a_legal_secret_key() -> None:
    with pytest.raises(InvalidSpec):
        render_templates({"bad/key": "x"}, VALUES)


def test_the_limits_do_not_leak_into_the_next_render() -> None:
    failure("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}")
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}") == b"012"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ username | fromjson }}", "fromjson"),
        ("{{ password | b64dec }}", "b64dec"),
        ("{{ '_w==' | b64dec }}", "UTF-8"),
    ],
)
def test_filter_failures_say_which_filter(source: str, words: str) -> None:
    message = failure(source)
    assert "filter failed" in message
    assert words in message

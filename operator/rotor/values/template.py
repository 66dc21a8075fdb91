"""``template.data``: sandboxed Jinja2 rendering of the final Secret keys (DESIGN §1, §7).

Templates run in Jinja2's immutable sandbox with ``StrictUndefined`` and no autoescaping, and
every kind of work is bounded, so a template can neither escape nor exhaust the operator:

- a template's source is at most 64 KiB, and the constructs that buffer output out of sight
  (``macro``, ``call``, ``filter`` blocks, block ``set``, ``block``, ``include``, ``import``,
  ``extends``) are refused;
- ``range`` gives at most 10,000 items, loops and calls share a budget of steps, and rendering
  stops after a time limit;
- the output of all templates together, and every string built on the way, stays under the
  output limit (1 MiB, the Secret size limit), and the bytes built in total are bounded too;
- only a curated set of filters exists.

The context holds every value as text (UTF-8, undecodable bytes replaced), under its own name when
that is an identifier and always under ``values`` (``values['tls.crt']``). ``b64enc`` and
``sha256`` see the exact bytes of a value, so binary values survive ``{{ keystore | b64enc }}``.

Errors become TemplateError naming the template key, the error kind and the line. Messages are
scrubbed of anything that is not from the template source or the key names, and of every value.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import hashlib
import json
import re
import string
import time
import types
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2 import filters as jinja_filters
from jinja2.environment import Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from rotor.values.decode import strict_b64decode
from rotor.values.errors import TemplateError
from rotor.values.properties import quote_name, require_secret_key
from rotor.values.size import SECRET_SIZE_LIMIT

MAX_TEMPLATE_BYTES = 64 * 1024
MAX_RANGE_ITEMS = 10_000
#: loop iterations, calls, filters and operators, per render of all templates
MAX_STEPS = 200_000
#: every string built while rendering, in total
MAX_WORK_BYTES = 32 * 1024 * 1024
#: items of a list built by ``*`` or ``+``
MAX_LIST_ITEMS = 100_000
#: bits of an integer built by ``*`` or ``**``
MAX_INT_BITS = 64 * 1024
DEFAULT_TIME_LIMIT_SECONDS = 5.0

_MESSAGE_LIMIT = 300
_REDACTED = "<redacted>"
#: values at least this long are removed from messages wherever they appear
_REDACT_ANYWHERE_LENGTH = 8


# --------------------------------------------------------------------------- the public call


def render_templates(
    templates: Mapping[str, str],
    values: Mapping[str, bytes],
    *,
    max_output_bytes: int = SECRET_SIZE_LIMIT,
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, bytes]:
    """Render each template (Secret key -> Jinja2 source) over ``values``; return the key -> bytes.

    ``max_output_bytes`` bounds the output of all templates together. ``clock`` and
    ``time_limit_seconds`` bound the time spent. Raises TemplateError, or InvalidSpec for a
    template key that is not a legal Secret key.
    """
    for name in templates:
        require_secret_key(name, source="template.data")
    context = _context(values)
    budget = _Budget(
        max_output_bytes=max_output_bytes,
        output_left=max_output_bytes,
        deadline=clock() + time_limit_seconds,
        clock=clock,
    )
    token = _BUDGET.set(budget)
    try:
        return {name: _render_one(name, source, context, values) for name, source in templates.items()}
    finally:
        _BUDGET.reset(token)


def _render_one(name: str, source: str, context: dict[str, Any], values: Mapping[str, bytes]) -> bytes:
    if len(source.encode("utf-8", errors="replace")) > MAX_TEMPLATE_BYTES:
        raise TemplateError(
            f"template {quote_name(name)} is longer than the {MAX_TEMPLATE_BYTES}-byte limit for a template"
        )
    budget = _budget()
    try:
        template = _compile(source)
        chunks: list[bytes] = []
        stream = cast(Generator[str, None, None], template.generate(context))
        with contextlib.closing(stream):
            for text in stream:
                chunk = text.encode("utf-8")
                budget.emit(len(chunk))
                chunks.append(chunk)
        return b"".join(chunks)
    except TemplateError:
        raise
    except Exception as exc:
        raise _template_error(name, exc, source, values) from None


# --------------------------------------------------------------------------- bounds


class _LimitExceeded(Exception):
    """A bound was hit. The message is ours, and safe."""


class _FilterFailed(Exception):
    """A Rotor filter could not handle its input. The message is ours, and safe."""


@dataclass
class _Budget:
    max_output_bytes: int
    output_left: int
    deadline: float
    clock: Callable[[], float]
    steps_left: int = MAX_STEPS
    work_left: int = MAX_WORK_BYTES

    def step(self, count: int = 1) -> None:
        self.steps_left -= count
        if self.steps_left < 0:
            raise _LimitExceeded(f"more than {MAX_STEPS} loop iterations, calls and operations")
        if self.clock() > self.deadline:
            raise _LimitExceeded("rendering took longer than the time limit")

    def charge(self, result: Any) -> None:
        """Count a string or list just built against the total work."""
        if isinstance(result, str | bytes | list | tuple | dict):
            self.work_left -= len(result)
            if self.work_left < 0:
                raise _LimitExceeded(f"more than {MAX_WORK_BYTES} bytes built while rendering")

    def check_size(self, size: int) -> None:
        """Refuse, before building it, a value larger than the output limit."""
        if size > self.max_output_bytes:
            raise _LimitExceeded(
                f"an expression would build a value over the {self.max_output_bytes}-byte output limit"
            )

    def emit(self, size: int) -> None:
        self.output_left -= size
        if self.output_left < 0:
            raise _LimitExceeded(f"the output is over the {self.max_output_bytes}-byte limit")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("rotor_template_budget")


def _budget() -> _Budget:
    return _BUDGET.get()


def _approx_size(obj: Any, cap: int) -> int:
    """About how many characters ``str(obj)`` makes, counted no further than just past ``cap``."""
    total, stack = 0, [obj]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 3
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            if total <= cap:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total <= cap:
                stack.extend(item)
        else:
            total += 32
    return total


def _check_value_size(obj: Any) -> None:
    budget = _budget()
    budget.check_size(_approx_size(obj, budget.max_output_bytes))


_PRINTF_FIELD = re.compile(r"%(?:%|(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?)")


def _check_printf(fmt: str | bytes) -> int:
    """Refuse huge or argument-given widths in a ``%`` format; return how many fields it has."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    fields = 0
    for match in _PRINTF_FIELD.finditer(text):
        if match.group(0) != "%%":
            fields += 1
        for number in match.groups():
            _check_width(number)
    return fields


def _check_brace_format(fmt: str) -> int:
    """Refuse huge or argument-given widths in a ``str.format`` string; return how many fields."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return 0  # the format call itself will fail
    fields = 0
    for _literal, name, spec, _conversion in parsed:
        if name is not None:
            fields += 1
        if spec and "{" in spec:
            raise _LimitExceeded("format widths must be written out, not taken from arguments")
        for number in re.findall(r"\d+", spec or ""):
            _check_width(number)
    return fields


def _check_formatted_size(fmt: str | bytes, fields: int, arguments: Any) -> None:
    """Each field may repeat any argument (``'%(a)s%(a)s'``, ``'{0}{0}'``), so count them all."""
    budget = _budget()
    budget.check_size(len(fmt) + max(fields, 1) * _approx_size(arguments, budget.max_output_bytes))


def _check_width(number: str | None) -> None:
    if number is None:
        return
    if number == "*":
        raise _LimitExceeded("format widths must be written out, not taken from arguments ('*')")
    budget = _budget()
    if len(number) > 9 or int(number) > budget.max_output_bytes:
        budget.check_size(budget.max_output_bytes + 1)


# --------------------------------------------------------------------------- the environment


class _SecretText(str):
    """A value as text, still holding its exact bytes for ``b64enc`` and ``sha256``."""

    _raw: bytes

    def __new__(cls, raw: bytes) -> _SecretText:
        text = super().__new__(cls, raw.decode("utf-8", errors="replace"))
        text._raw = raw
        return text


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, _SecretText):
        return value._raw
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("expected text or bytes")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every operation that can build something big checked first."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        budget.charge(result)
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if _is_text_method(__obj, "join") and len(args) == 1 and not kwargs:
            result = _bounded_join(__obj.__self__, args[0])
        else:
            _check_text_method(__obj, args, kwargs)
            result = super().call(__context, __obj, *args, **kwargs)
        budget.charge(result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        fields = _check_brace_format(fmt)

        @functools.wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            _check_formatted_size(fmt, fields, (args, kwargs))
            return wrapped(*args, **kwargs)  # call() counts the result

        return bounded


def _check_binop(operator: str, left: Any, right: Any) -> None:
    budget = _budget()
    if operator == "*":
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, str | bytes) and isinstance(count, int):
            budget.check_size(len(sequence) * max(count, 0))
        elif isinstance(sequence, list | tuple) and isinstance(count, int):
            if len(sequence) * max(count, 0) > MAX_LIST_ITEMS:
                raise _LimitExceeded(f"a list of more than {MAX_LIST_ITEMS} items")
        elif isinstance(left, int) and isinstance(right, int):
            _check_int_bits(abs(left).bit_length() + abs(right).bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_int_bits(abs(left).bit_length() * right)
    elif operator == "+":
        if isinstance(left, str | bytes) and isinstance(right, str | bytes):
            budget.check_size(len(left) + len(right))
        elif (
            isinstance(left, list | tuple)
            and isinstance(right, list | tuple)
            and len(left) + len(right) > MAX_LIST_ITEMS
        ):
            raise _LimitExceeded(f"a list of more than {MAX_LIST_ITEMS} items")
    elif operator == "%" and isinstance(left, str | bytes):
        _check_formatted_size(left, _check_printf(left), right)


def _check_int_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _LimitExceeded(f"a number of more than {MAX_INT_BITS} bits")


def _is_text_method(obj: Any, *names: str) -> bool:
    return (
        isinstance(obj, types.BuiltinMethodType)
        and isinstance(getattr(obj, "__self__", None), str | bytes)
        and obj.__name__ in names
    )


def _check_text_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if not _is_text_method(obj, "center", "ljust", "rjust", "zfill", "expandtabs", "replace"):
        return
    target: str | bytes = obj.__self__
    budget = _budget()
    name = obj.__name__
    if name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        tab: Any = b"\t" if isinstance(target, bytes) else "\t"
        if isinstance(tabsize, int):
            budget.check_size(len(target) + target.count(tab) * max(tabsize, 0))
    elif name == "replace":
        if len(args) >= 2 and isinstance(args[0], str | bytes) and isinstance(args[1], str | bytes):
            _check_replace(target, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
    else:
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            budget.check_size(width)


def _check_replace(target: Any, old: Any, new: Any, count: Any) -> None:
    if not all(isinstance(part, str | bytes) for part in (target, old, new)):
        return
    text, old_text = _latin1(target), _latin1(old)
    occurrences = text.count(old_text) if old_text else len(text) + 1
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    _budget().check_size(len(text) + occurrences * max(len(new) - len(old), 0))


def _latin1(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _bounded_join(separator: str | bytes, items: Iterable[Any]) -> str | bytes:
    budget = _budget()
    parts: list[Any] = []
    total = 0
    for item in items:
        budget.step()
        if isinstance(item, str | bytes):
            total += len(item) + len(separator)
        budget.check_size(total)
        parts.append(item)
    return separator.join(parts)


# --------------------------------------------------------------------------- filters and globals


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE_ITEMS:
        raise _LimitExceeded(f"range of more than {MAX_RANGE_ITEMS} items")
    _budget().step(len(numbers))
    return numbers


def _counted_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """Wraps the iterable of every ``for`` loop: one step per iteration."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _concat(parts: list[Any]) -> str:
    """``a ~ b``, checked before it is built."""
    return str(_join_filter(parts))


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    _check_value_size(value)
    return str(value)


def _string_filter(value: Any) -> str:
    return _text_of(value)


@jinja_filters.pass_environment
def _join_filter_with_env(environment: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = (environment.getattr(item, attribute) for item in value)
    return _join_filter(value, d)


def _join_filter(value: Iterable[Any], separator: str = "") -> str:
    budget = _budget()
    parts: list[str] = []
    total = 0
    for item in value:
        budget.step()
        text = _text_of(item)
        total += len(text) + len(separator)
        budget.check_size(total)
        parts.append(text)
    return separator.join(parts)


def _center_filter(value: Any, width: int = 80) -> str:
    if isinstance(width, int):
        _budget().check_size(width)
    return jinja_filters.do_center(_text_of(value), width)


def _indent_filter(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = _text_of(value)
    pad = width if isinstance(width, int) else len(str(width))
    _budget().check_size(len(text) + max(pad, 0) * (text.count("\n") + 1))
    return jinja_filters.do_indent(text, width, first, blank)


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    text = _text_of(value)
    _check_formatted_size(text, _check_printf(text), (args, kwargs))
    return jinja_filters.do_format(text, *args, **kwargs)


@jinja_filters.pass_eval_context
def _replace_filter(eval_ctx: Any, value: Any, old: str, new: str, count: int | None = None) -> str:
    text = _text_of(value)
    _check_replace(text, str(old), str(new), -1 if count is None else count)
    return jinja_filters.do_replace(eval_ctx, text, old, new, count)


def _batch_filter(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if not isinstance(linecount, int) or not 0 < linecount <= MAX_RANGE_ITEMS:
        raise _LimitExceeded(f"batch size must be from 1 to {MAX_RANGE_ITEMS}")
    return jinja_filters.do_batch(value, linecount, fill_with)


def _tojson_filter(value: Any, indent: int | None = None) -> str:
    _check_value_size(value)
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= 16):
        raise _LimitExceeded("tojson indent must be from 0 to 16")
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _json_escape_filter(value: Any) -> str:
    """The text of ``value`` escaped to sit inside a JSON string's quotes."""
    return json.dumps(_text_of(value), ensure_ascii=False)[1:-1]


def _fromjson_filter(value: Any) -> Any:
    try:
        return json.loads(_text_of(value))
    except ValueError:
        raise _FilterFailed("fromjson: the value is not valid JSON") from None


def _b64enc_filter(value: Any) -> str:
    raw = _bytes_of(value) if isinstance(value, str | bytes) else _text_of(value).encode("utf-8")
    _budget().check_size(len(raw) * 4 // 3 + 4)
    return base64.b64encode(raw).decode("ascii")


def _b64dec_filter(value: Any) -> str:
    raw = _bytes_of(value) if isinstance(value, str | bytes) else _text_of(value).encode("utf-8")
    decoded = strict_b64decode(raw)
    if decoded is None:
        raise _FilterFailed("b64dec: the value is not valid base64")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise _FilterFailed("b64dec: the decoded bytes are not UTF-8 text") from None


def _sha256_filter(value: Any) -> str:
    raw = _bytes_of(value) if isinstance(value, str | bytes) else _text_of(value).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def _urlencode_filter(value: Any) -> str:
    """Percent-encode for any URL component: unlike Jinja's own filter, '/' is escaped too, so a
    base64 password cannot change a URL's path or host."""
    _check_value_size(value)
    if isinstance(value, dict | list | tuple):
        return jinja_filters.do_urlencode(value)
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return urllib.parse.quote(text, safe="")


_JINJA_FILTERS_KEPT = (
    "abs",
    "attr",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "groupby",
    "int",
    "items",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "round",
    "select",
    "selectattr",
    "sort",
    "title",
    "trim",
    "truncate",
    "unique",
    "upper",
    "wordcount",
)

_ROTOR_FILTERS: dict[str, Callable[..., Any]] = {
    "string": _string_filter,
    "join": _join_filter_with_env,
    "center": _center_filter,
    "indent": _indent_filter,
    "format": _format_filter,
    "replace": _replace_filter,
    "batch": _batch_filter,
    "tojson": _tojson_filter,
    "json_escape": _json_escape_filter,
    "fromjson": _fromjson_filter,
    "b64enc": _b64enc_filter,
    "b64dec": _b64dec_filter,
    "sha256": _sha256_filter,
    "urlencode": _urlencode_filter,
}

#: internal filters the compiled templates call; not meant for authors, harmless if used
_LOOP_FILTER = "rotor_counted_loop"
_CONCAT_FILTER = "rotor_concat"


def _charged(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that takes one step and counts what it builds."""

    @functools.wraps(function)  # keeps Jinja's pass_context / pass_eval_context marks
    def charged(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        result = function(*args, **kwargs)
        budget.charge(result)
        return result

    return charged


def _filters() -> dict[str, Callable[..., Any]]:
    chosen = {name: jinja_filters.FILTERS[name] for name in _JINJA_FILTERS_KEPT}
    chosen.update(_ROTOR_FILTERS)
    wrapped = {name: _charged(function) for name, function in chosen.items()}
    wrapped[_LOOP_FILTER] = _counted_loop
    wrapped[_CONCAT_FILTER] = _charged(_concat)
    return wrapped


def _finalize(value: Any) -> Any:
    """Every printed expression, before Jinja turns it into text."""
    _budget().step()
    if not isinstance(value, str):
        _check_value_size(value)
    return value


def _environment() -> _BoundedSandbox:
    environment = _BoundedSandbox(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize,
        cache_size=0,
        auto_reload=False,
        optimized=False,
    )
    environment.globals.clear()
    environment.globals["range"] = _bounded_range
    environment.filters.clear()
    environment.filters.update(_filters())
    return environment


_ENVIRONMENT = _environment()


# --------------------------------------------------------------------------- compiling

_UNSUPPORTED: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.FilterBlock: "filter",
    nodes.AssignBlock: "set ... endset",
    nodes.Block: "block",
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}


class _Unsupported(Exception):
    """The template uses a construct Rotor refuses. The message is ours, and safe."""


class _Bounding(NodeTransformer):
    """Routes every ``for`` loop through the step budget and every ``~`` through the size check."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter_call(cast(nodes.Expr, node.iter), _LOOP_FILTER)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter_call(nodes.List(list(node.nodes), lineno=node.lineno), _CONCAT_FILTER)


def _filter_call(argument: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(argument, name, [], [], None, None, lineno=argument.lineno)


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> Template:
    tree = _ENVIRONMENT.parse(source)
    for node_type, tag in _UNSUPPORTED.items():
        found = next(tree.find_all(node_type), None)
        if found is not None:
            raise _Unsupported(
                f"{{% {tag} %}} at line {found.lineno} is not supported in Rotor templates "
                "(use expressions, if, for, set and with)"
            )
    bounded = _Bounding().visit(tree)
    return _ENVIRONMENT.from_string(bounded)


def _context(values: Mapping[str, bytes]) -> dict[str, Any]:
    texts = {name: _SecretText(bytes(value)) for name, value in values.items()}
    context: dict[str, Any] = {
        name: text for name, text in texts.items() if name.isidentifier() and name not in _RESERVED
    }
    context["values"] = texts
    return context


_RESERVED = frozenset({"values", "range", "loop", "self"})


# --------------------------------------------------------------------------- safe messages

_QUOTED = re.compile(r"""(?<!\w)(['"])((?:(?!\1)[^\\]|\\.)*)\1(?!\w)""")
_TYPE_NAMES = frozenset(
    {
        "str",
        "int",
        "float",
        "bool",
        "dict",
        "list",
        "tuple",
        "set",
        "bytes",
        "NoneType",
        "range",
        "type",
        "function",
        "method",
        "builtin_function_or_method",
        "generator",
        "Markup",
        "LoopContext",
        "StrictUndefined",
        "TemplateReference",
    }
)


_OWN_ERROR_KINDS: dict[type[Exception], str] = {
    _LimitExceeded: "limit exceeded",
    _FilterFailed: "filter failed",
    _Unsupported: "unsupported",
}


def _template_error(name: str, exc: BaseException, source: str, values: Mapping[str, bytes]) -> TemplateError:
    if isinstance(exc, _LimitExceeded | _FilterFailed | _Unsupported):
        kind, detail = _OWN_ERROR_KINDS[type(exc)], str(exc)
    else:
        kind = type(exc).__name__
        if isinstance(exc, TemplateSyntaxError):
            # raised while compiling: from the source alone, before any value was seen
            detail = _scrub(exc.message or "", source, values, keep_quoted=True)
        else:
            detail = _scrub(str(exc), source, values)
    line = exc.lineno if isinstance(exc, TemplateSyntaxError) else _template_line(exc)
    where = f" at line {line}" if line else ""
    return TemplateError(f"template {quote_name(name)}: {kind}{where}: {detail}")


def _template_line(exc: BaseException) -> int | None:
    """The line of the template where ``exc`` was raised (Jinja rewrites tracebacks to show it)."""
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _scrub(text: str, source: str, values: Mapping[str, bytes], *, keep_quoted: bool = False) -> str:
    """``text`` keeping only quoted words from the template source, key names and type names,
    with every value (and its repr) removed, cut to a readable length."""
    text = text.replace(f"{__name__}.{_SecretText.__name__}", "str").replace(_SecretText.__name__, "str")
    names = set(values)

    def keep_or_redact(match: re.Match[str]) -> str:
        quote, inner = match.group(1), match.group(2)
        if inner in names or inner in _TYPE_NAMES or inner.endswith(" object") or (inner and inner in source):
            return match.group(0)
        return f"{quote}{_REDACTED}{quote}"

    if not keep_quoted:
        text = _QUOTED.sub(keep_or_redact, text)
    for raw in sorted(values.values(), key=len, reverse=True):
        secret = raw.decode("utf-8", errors="replace")
        for form in {secret, repr(secret)[1:-1], repr(raw)[2:-1]}:
            if len(form) >= _REDACT_ANYWHERE_LENGTH:
                text = text.replace(form, _REDACTED)
            elif form:  # a short value, such as "app", only as a word of its own (not in "append")
                text = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", _REDACTED, text)
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    return text


__all__ = [
    "DEFAULT_TIME_LIMIT_SECONDS",
    "MAX_RANGE_ITEMS",
    "MAX_STEPS",
    "MAX_TEMPLATE_BYTES",
    "render_templates",
]

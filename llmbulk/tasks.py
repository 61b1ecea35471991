"""Rows + prompt template + parameters → provider-neutral `Task`s with stable item keys.

Rendering is deterministic, so a retry can re-render exactly the request an item was first sent
with. Every problem names the file and row and is raised before anything is sent.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmbulk.attachments.template import ATTACH_FUNCTION, ROW_VARIABLE, Attacher, base_folder
from llmbulk.errors import InputError
from llmbulk.models import JobSpec, Task
from llmbulk.params import value_problem
from llmbulk.tables import InputTable
from llmbulk.template_plain import Render, plain_renderer

PARAM_NAMES = ("max_tokens", "temperature", "top_p", "stop", "seed")
# Every role some provider takes; which ones a provider accepts is its adapter's check.
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function", "model"})


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What turns a row into a task; stored with the job so retries render the same request."""

    prompt: str | None = None
    system: str | None = None
    id_column: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    attach: tuple[str, ...] = ()  # --attach: columns whose files go after the prompt text
    # Where the prompt came from (e.g. the --prompt-file path), for error messages; not stored.
    prompt_source: str | None = field(default=None, compare=False)

    @property
    def tasks_mode(self) -> bool:
        """Rows are already chat tasks (`{"id", "messages", …}`) rather than template data."""
        return self.prompt is None

    def to_json(self) -> dict[str, Any]:
        return self.job_spec().task_json()

    def job_spec(self, **fields: Any) -> JobSpec:
        return JobSpec(
            prompt=self.prompt, system=self.system, id_column=self.id_column, params=self.params,
            output_schema=self.output_schema, attach=list(self.attach), **fields,
        )  # fmt: skip

    @classmethod
    def of(cls, spec: JobSpec) -> TaskSpec:
        return cls(spec.prompt, spec.system, spec.id_column, dict(spec.params), spec.output_schema, tuple(spec.attach))


# Template tags that load other templates; prompts are standalone (there is no loader).
_LOADING_TAGS = {"Include": "include", "Import": "import", "FromImport": "from", "Extends": "extends"}


def _label(what: str, source: str | None) -> str:
    return f"{what} template" if source is None else f"{what} template ({source})"


class _Templates:
    def __init__(self, spec: TaskSpec, columns: list[str], where: str, attacher: Attacher | None = None) -> None:
        from jinja2 import Environment, StrictUndefined, TemplateError, TemplateSyntaxError, meta, nodes

        env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.prompt = self.system = None
        self.plain_prompt: Render | None = None  # the prompt without Jinja's runtime, when it is plain
        self.uses_row = False  # the prompt reads `row.<column>` (there is no column named row)
        self.labels = {"prompt": _label("prompt", spec.prompt_source), "system": _label("system", None)}
        for name, source in (("prompt", spec.prompt), ("system", spec.system)):
            if source is None:
                continue
            label = self.labels[name]
            if name == "prompt" and not source.strip():
                raise InputError(f"{label} is empty", hint="give the prompt template, e.g. 'Summarise: {{ text }}'")
            try:
                parsed = env.parse(source)
                for node in parsed.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
                    tag, target = (
                        _LOADING_TAGS[type(node).__name__],
                        getattr(getattr(node, "template", None), "value", "…"),
                    )
                    raise InputError(
                        f"{label}: {{% {tag} {target!r} %}} is not supported (line {node.lineno})",
                        hint=f"templates cannot load other files; paste the text of {target} into the template",
                    )
                # Unknown filters and tests are only found when the template is compiled.
                undeclared = meta.find_undeclared_variables(parsed)
                if name == "prompt" and ATTACH_FUNCTION in undeclared:
                    undeclared -= {ATTACH_FUNCTION, ROW_VARIABLE}
                    self.uses_row = ROW_VARIABLE not in columns
                missing = sorted(undeclared - set(columns))
                compiled = env.from_string(source)
                # A flat copy of the template's globals (a ChainMap over the environment's): Jinja
                # copies them into every render's context, and a ChainMap is copied key by key in
                # Python, several times the cost of a short render. Same names, same values.
                compiled.globals = dict(compiled.globals)
                if name == "prompt":
                    self.plain_prompt = plain_renderer(parsed)
                if name == "prompt" and attacher is not None:
                    compiled.globals[ATTACH_FUNCTION] = attacher
            except TemplateSyntaxError as exc:
                raise InputError(
                    f"{label}: {exc.message} (line {exc.lineno})",
                    hint="check the template's Jinja2 syntax and filter names",
                ) from exc
            except TemplateError as exc:
                raise InputError(f"{label}: {exc.message or type(exc).__name__}", hint="fix the template") from exc
            if missing and columns:
                raise InputError(
                    f"{label} uses {{{{ {missing[0]} }}}} but {where} has no column {missing[0]!r}",
                    hint=f"columns are: {', '.join(columns)}",
                )
            setattr(self, name, compiled)


def iter_tasks(table: InputTable, spec: TaskSpec, only_rows: Container[int] | None = None) -> Iterator[Task]:
    """Tasks for every row (or only the given rows) of the table, in input order."""
    if spec.tasks_mode:
        yield from _chat_tasks(table, spec, only_rows)
        return
    columns = table.columns()
    if spec.id_column is not None and columns and spec.id_column not in columns:
        raise InputError(f"{table.path} has no id column {spec.id_column!r}", hint=f"columns are: {', '.join(columns)}")
    for column in spec.attach:
        if columns and column not in columns:
            raise InputError(
                f"{table.path} has no column {column!r} to --attach", hint=f"columns are: {', '.join(columns)}"
            )
    attacher = _attacher(table, spec)
    templates = _Templates(spec, columns, str(table.path), attacher)
    assert templates.prompt is not None  # not tasks mode: there is a prompt
    if attacher is not None:
        yield from _attaching_tasks(table, spec, templates, attacher, only_rows)
        return
    render_prompt, plain_prompt = templates.prompt.render, templates.plain_prompt
    id_column, params, schema = spec.id_column, spec.params, spec.output_schema
    for index, row in enumerate(table.rows()):
        if only_rows is not None and index not in only_rows:
            continue
        # `_row_key` and `_render` inlined for the common case (a non-empty string id, no error).
        value = row.get(id_column) if id_column is not None else None
        key = value if type(value) is str and value and "\0" not in value else _row_key(table, id_column, row, index)
        prompt = plain_prompt(row) if plain_prompt is not None else None
        try:
            if prompt is None:  # not plain, or a column is missing: Jinja's own answer
                prompt = render_prompt(row)
        except Exception as exc:
            error = _render_error(exc, table, index, templates.labels["prompt"])
            if error is None:
                raise
            raise error from exc
        system = _render(templates.system, row, table, index, templates.labels["system"]) if templates.system else None
        yield Task(index, key, [{"role": "user", "content": prompt}], system, params, schema)


def _attacher(table: InputTable, spec: TaskSpec) -> Attacher | None:
    if not spec.attach and f"{ATTACH_FUNCTION}(" not in (spec.prompt or ""):
        return None
    return Attacher(base_folder(table.path, table.format == "files"), str(table.path), spec.attach)


def _attaching_tasks(
    table: InputTable, spec: TaskSpec, templates: _Templates, attacher: Attacher, only_rows: Container[int] | None
) -> Iterator[Task]:
    """`iter_tasks` for prompts with attachments: the user message's content is a list of parts."""
    for index, row in enumerate(table.rows()):
        if only_rows is not None and index not in only_rows:
            continue
        key = _row_key(table, spec.id_column, row, index)
        attacher.start(index, row)
        context = {**row, ROW_VARIABLE: row} if templates.uses_row else row
        prompt = _render(templates.prompt, context, table, index, templates.labels["prompt"])
        content = attacher.content(prompt)
        system = _render(templates.system, row, table, index, templates.labels["system"]) if templates.system else None
        yield Task(index, key, [{"role": "user", "content": content}], system, spec.params, spec.output_schema)


def _render(template: Any, row: dict[str, Any], table: InputTable, index: int, label: str) -> str:
    try:
        return template.render(row)
    except Exception as exc:
        error = _render_error(exc, table, index, label)
        if error is None:
            raise
        raise error from exc


def _render_error(exc: Exception, table: InputTable, index: int, label: str) -> InputError | None:
    # Imported here, not per row: the import statement alone costs ~1.5 µs on the hot path.
    from jinja2 import TemplateError, UndefinedError

    if isinstance(exc, UndefinedError):
        return InputError(
            f"{table.path}: row {index + 1}: {label}: {exc.message}",
            hint="add the column or fix the template variable",
        )
    # What a template expression can raise on a row's values, e.g. {{ text + 1 }} on a string.
    if isinstance(exc, TemplateError | TypeError | ValueError | ArithmeticError | LookupError | AttributeError):
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return InputError(
            f"{table.path}: row {index + 1}: {label}: {reason}",
            hint="fix the template for this row's values (CSV columns are strings: convert with |int or |float)",
        )
    return None


def _row_key(table: InputTable, id_column: str | None, row: dict[str, Any], index: int) -> str:
    if id_column is None:
        return str(index)
    value = row.get(id_column)
    if value is None or value == "":
        raise InputError(
            f"{table.path}: row {index + 1} has an empty id in column {id_column!r}",
            hint="every row needs an id, or drop --id-column to use row numbers",
        )
    key = str(value)
    if "\0" in key:  # PostgreSQL text cannot hold it, and no provider round-trips it
        raise InputError(
            f"{table.path}: row {index + 1}: the id in column {id_column!r} holds a NUL byte",
            hint="clean the id column (NUL bytes are not allowed in ids)",
        )
    return key


def _chat_tasks(table: InputTable, spec: TaskSpec, only_rows: Container[int] | None) -> Iterator[Task]:
    id_field = spec.id_column or "id"
    for index, row in enumerate(table.rows()):
        if only_rows is not None and index not in only_rows:
            continue
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InputError(
                f'{table.path}: row {index + 1} has no "messages" list',
                hint='tasks files need {"id", "messages": [{"role", "content"}]} per line, or pass --prompt',
            )
        for message in messages:
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise InputError(
                    f'{table.path}: row {index + 1}: each message needs "role" and "content"',
                    hint='e.g. {"role": "user", "content": "…"}',
                )
            role, content = message["role"], message["content"]
            if type(role) is not str or role not in MESSAGE_ROLES:
                raise InputError(
                    f"{table.path}: row {index + 1}: message role {role!r} is not a chat role",
                    hint="use user, assistant or system",
                )
            if type(content) is not str:  # the common case, a string, needs no more checks
                problem = _content_problem(content, role)
                if problem is not None:
                    raise InputError(f"{table.path}: row {index + 1}: a {role} message's {problem}", hint=CONTENT_HINT)
        system = row.get("system")
        if system is not None and type(system) is not str:
            raise InputError(
                f'{table.path}: row {index + 1}: "system" is a JSON {_json_type(system)}, not a string',
                hint='e.g. "system": "You are terse."',
            )
        system_messages = [m for m in messages if m["role"] == "system"]
        if system_messages and system is None:
            system = "\n\n".join(_text(m["content"]) for m in system_messages)
            messages = [m for m in messages if m["role"] != "system"]
        params = dict(spec.params)
        row_params = {name: row[name] for name in PARAM_NAMES if row.get(name) is not None}
        if row_params:
            for name, value in row_params.items():
                problem = value_problem(name, value)
                if problem is not None:
                    raise InputError(f'{table.path}: row {index + 1}: "{name}" {problem}', hint="fix that row")
            params.update(row_params)
        key = _row_key(table, id_field, row, index) if id_field in row else str(index)
        yield Task(index, key, messages, system, params, spec.output_schema)


CONTENT_HINT = 'content is a string, or a list of parts such as [{"type": "text", "text": "…"}]'


def _content_problem(content: Any, role: str) -> str | None:
    """Why a message's non-string content cannot be sent, or None."""
    if content is None:
        return None if role == "assistant" else "content is null"  # an assistant turn may hold only tool calls
    if type(content) is not list:
        return f"content is a JSON {_json_type(content)}, not a string or a list of parts"
    if not content:
        return "content is an empty list"
    for part in content:
        if not isinstance(part, str | dict):
            return f"content list holds a JSON {_json_type(part)}, not a part object"
    return None


def _text(content: Any) -> str:
    """A system message's text: a string, or its text parts joined (not the list's repr)."""
    if type(content) is str:
        return content
    parts = content or []
    return "".join(p if type(p) is str else str(p.get("text") or "") for p in parts)


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)

"""A tokenizer's Jinja chat template rendered the way transformers renders it, without transformers or torch.

The environment copies transformers' `apply_chat_template`: jinja2's immutable sandbox (a template from a
downloaded folder can neither reach Python internals nor change the messages it is given), `trim_blocks` and
`lstrip_blocks`, loop controls, a `tojson` filter that keeps non-ASCII text and uses json.dumps' ", " / ": "
separators (jinja's own escapes <, > and & for HTML), the `raise_exception` and `strftime_now` globals and the
`{% generation %}` block (which only marks assistant text for transformers' masks, so here it just renders its
body). Like transformers, the special tokens (`bos_token`, `eos_token`, ...) are template variables.
"""
from __future__ import annotations

import json
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    user_facing = True


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _GenerationBlock(Extension):
    """`{% generation %}...{% endgeneration %}`: rendered as its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationBlock, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV: ImmutableSandboxedEnvironment | None = None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class ChatTemplate:
    """A compiled template. `source` names where it came from (the tokenizer_config.json) in every error."""

    def __init__(self, template: str, source: str):
        global _ENV
        self.template = template
        self.source = source
        _ENV = _ENV or _environment()
        try:
            self._compiled = _ENV.from_string(template)
        except jinja2.TemplateSyntaxError as e:
            raise ChatTemplateError(f"{source}: chat template line {e.lineno}: {_one_line(e.message or e)}; "
                                    f"fix the template or use another tokenizer folder") from None

    def render(self, messages: list[dict], tools: list | None = None, add_generation_prompt: bool = True,
               variables: dict | None = None, **kwargs) -> str:
        """`variables` are the tokenizer's special tokens; `kwargs` go to the template as they are
        (`enable_thinking` for MiniMind2, `open_thinking` for minimind-3)."""
        context = {**(variables or {}), **kwargs}
        try:
            return self._compiled.render(messages=messages, tools=tools, documents=None,
                                         add_generation_prompt=add_generation_prompt, **context)
        except Exception as e:  # noqa: BLE001 (whatever the template or the data did wrong, said in one line)
            where = self._failing_message(messages, tools, add_generation_prompt, context)
            at = f" at messages[{where}]" if where is not None else ""
            raise ChatTemplateError(f"{self.source}: chat template error{at}: {_one_line(e) or type(e).__name__}"
                                    ) from None

    def _failing_message(self, messages, tools, add_generation_prompt, context) -> int | None:
        """Which message the template was reading when it failed: rendered again (errors only) with
        messages that note each read of one of their fields."""
        seen = _Seen()
        tracked = [_TrackedMessage(m, k, seen) if isinstance(m, dict) else m for k, m in enumerate(messages)]
        try:
            self._compiled.render(messages=tracked, tools=tools, documents=None,
                                  add_generation_prompt=add_generation_prompt, **context)
        except Exception:  # noqa: BLE001
            return seen.index
        return None


class _Seen:
    index: int | None = None


class _TrackedMessage(dict):
    """A message that records its index in `seen` whenever the template reads one of its fields."""

    def __init__(self, message: dict, index: int, seen: _Seen):
        super().__init__(message)
        self._index, self._seen = index, seen

    def __getitem__(self, key):
        self._seen.index = self._index
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._seen.index = self._index
        return super().get(key, default)

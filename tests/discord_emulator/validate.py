"""Check request bodies against Discord's OpenAPI description and the limits it leaves out.

The description (``spec/openapi.json.gz``, Discord's own ``discord-api-spec``, MIT) is loaded
once per process; one compiled validator is cached per (route, method). A few deliberate
relaxations match what Discord's API accepts in practice and discord.py relies on:

* snowflakes may be JSON integers as well as strings (discord.py sends ``allowed_mentions.users``
  and attachment ids as integers);
* formats ``uri`` and ``date-time`` are checked by small local functions (http/https/attachment
  URLs, ISO 8601 timestamps) because jsonschema only checks them with optional extras installed.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(
    os.environ.get("DISCORD_OPENAPI_SPEC", Path(__file__).parent / "spec" / "openapi.json.gz")
)
_BASE_URI = "urn:discord-openapi"

MESSAGE_CONTENT_LIMIT = 2000
EMBED_TOTAL_LIMIT = 6000
EMBED_FIELDS_LIMIT = 25
ACTION_ROWS_LIMIT = 5
ROW_BUTTONS_LIMIT = 5
COMMAND_TOTAL_CHARS_LIMIT = 4000
FLAG_EPHEMERAL = 1 << 6
FLAG_COMPONENTS_V2 = 1 << 15
_NAME_CHARS = re.compile(r"^[-_'\w]{1,32}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request body: where (JSON path) and what."""

    path: str
    message: str
    code: str = "INVALID"

    def __str__(self) -> str:
        return f"{self.path or '<body>'}: {self.message}"


def _rewrite_refs(node: Any) -> Any:
    """Make every local ``$ref`` absolute so that any sub-schema resolves on its own."""
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = _BASE_URI + ref
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


@functools.cache
def load_spec() -> dict[str, Any]:
    """Load Discord's OpenAPI document (cached for the process)."""
    raw = SPEC_PATH.read_bytes()
    if SPEC_PATH.suffix == ".gz":
        raw = gzip.decompress(raw)
    doc: dict[str, Any] = _rewrite_refs(json.loads(raw))
    # Discord accepts integer snowflakes too, and discord.py sends some (see module docstring).
    doc["components"]["schemas"]["SnowflakeType"] = {
        "oneOf": [
            {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"},
            {"type": "integer", "minimum": 0},
        ]
    }
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = DRAFT202012.create_resource(load_spec())
    registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
    return registry


def _check_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if parts.scheme == "attachment":
        return bool(parts.netloc or parts.path)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("uri")(_check_uri)
_FORMATS.checks("date-time")(_check_datetime)


def request_schema(template: str, method: str) -> dict[str, Any] | None:
    """Return the JSON request-body schema of a route, or None when it takes no body."""
    operation = load_spec()["paths"].get(template, {}).get(method.lower())
    if not operation or "requestBody" not in operation:
        return None
    content = operation["requestBody"]["content"]
    media = content.get("application/json") or next(iter(content.values()))
    schema: dict[str, Any] = media["schema"]
    return schema


@functools.cache
def _validator(
    template: str, method: str, variant: str = ""
) -> jsonschema.Draft202012Validator | None:
    schema = request_schema(template, method)
    if schema is None:
        return None
    if variant:
        schema = {"$ref": f"{_BASE_URI}#/components/schemas/{variant}"}
    return jsonschema.Draft202012Validator(schema, registry=_registry(), format_checker=_FORMATS)


_WEAK = {"enum", "const", "type"}


def _leaves(error: ValidationError) -> list[ValidationError]:
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in _leaves(sub)]


def _rank(errors: list[ValidationError]) -> tuple[bool, int]:
    leaves = [leaf for e in errors for leaf in _leaves(e)]
    weak = any(leaf.validator in _WEAK for leaf in leaves)
    return (not weak, max((len(leaf.absolute_path) for leaf in leaves), default=0))


def _most_specific(error: ValidationError) -> ValidationError:
    # A union (oneOf/anyOf) fails in every branch. The branch the sender meant is the one
    # without a type/enum mismatch (wrong discriminator, null alternative), then the one that
    # got deepest into the body.
    if not error.context:
        return error
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context:
        key = sub.relative_schema_path[0] if sub.relative_schema_path else None
        branches.setdefault(key, []).append(sub)
    best = max(branches.values(), key=_rank)
    return max((_most_specific(e) for e in best), key=lambda e: _rank([e]))


def json_path(parts: Any) -> str:
    """Render a path like ``embeds[0].title``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_CALLBACK_VARIANTS = {
    1: "PongInteractionCallbackRequest",
    4: "CreateMessageInteractionCallbackRequest",
    5: "CreateMessageInteractionCallbackRequest",
    6: "UpdateMessageInteractionCallbackRequest",
    7: "UpdateMessageInteractionCallbackRequest",
    8: "ApplicationCommandAutocompleteCallbackRequest",
    9: "ModalInteractionCallbackRequest",
    12: "LaunchActivityInteractionCallbackRequest",
}


def schema_problems(template: str, method: str, body: Any) -> list[Problem]:
    """Validate ``body`` against the OpenAPI request schema of the route."""
    variant = ""
    if template.endswith("/callback") and isinstance(body, Mapping):
        ctype = body.get("type")
        variant = _CALLBACK_VARIANTS.get(ctype, "") if isinstance(ctype, int) else ""
    validator = _validator(template, method, variant)
    if validator is None:
        return []
    problems = []
    for error in validator.iter_errors(body):
        leaf = _most_specific(error)
        problems.append(
            Problem(
                json_path(leaf.absolute_path), _describe(leaf), f"SCHEMA_{leaf.validator}".upper()
            )
        )
    return problems


def _describe(error: ValidationError) -> str:
    """Say what is wrong without echoing a 6,000-character value back."""
    value = error.instance
    if error.validator in ("maxLength", "minLength") and isinstance(value, str):
        return f"{len(value)} characters; {error.validator} is {error.validator_value}"
    if error.validator in ("maxItems", "minItems") and isinstance(value, list):
        return f"{len(value)} items; {error.validator} is {error.validator_value}"
    message: str = error.message  # jsonschema ships no type information
    return message if len(message) <= 200 else message[:197] + "..."


# ---------------------------------------------------------------------------------------------
# Limits the schema does not carry.


def _embed_chars(embed: Mapping[str, Any]) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    for item in embed.get("fields") or []:
        if isinstance(item, Mapping):
            total += len(item.get("name") or "") + len(item.get("value") or "")
    for key, sub in (("footer", "text"), ("author", "name")):
        part = embed.get(key)
        if isinstance(part, Mapping):
            total += len(part.get(sub) or "")
    return total


def _component_problems(components: Any, flags: int, prefix: str) -> list[Problem]:  # noqa: C901 (Discord's component rules, one per branch)
    if not isinstance(components, list):
        return []
    problems: list[Problem] = []
    if not flags & FLAG_COMPONENTS_V2:
        if len(components) > ACTION_ROWS_LIMIT:
            problems.append(
                Problem(prefix, f"{len(components)} action rows; at most {ACTION_ROWS_LIMIT}")
            )
        for i, row in enumerate(components):
            if isinstance(row, Mapping) and row.get("type") != 1:
                problems.append(
                    Problem(
                        f"{prefix}[{i}].type",
                        "only action rows may be top-level components without the "
                        "IS_COMPONENTS_V2 flag",
                    )
                )
    seen: set[str] = set()
    for path, comp in _walk_components(components, prefix):
        ctype = comp.get("type")
        custom_id = comp.get("custom_id")
        if isinstance(custom_id, str):
            if custom_id in seen:
                problems.append(Problem(f"{path}.custom_id", f"duplicate custom_id {custom_id!r}"))
            seen.add(custom_id)
        if ctype == 1:
            children = comp.get("components") or []
            buttons = [c for c in children if isinstance(c, Mapping) and c.get("type") == 2]
            if len(buttons) > ROW_BUTTONS_LIMIT:
                problems.append(
                    Problem(f"{path}.components", f"{len(buttons)} buttons; at most 5 per row")
                )
            if len(children) > 1 and len(buttons) != len(children):
                problems.append(
                    Problem(f"{path}.components", "a select menu must be alone in its row")
                )
        if ctype == 2:
            style = comp.get("style")
            if style == 5:
                if not comp.get("url") or custom_id is not None:
                    problems.append(Problem(path, "a link button needs url and no custom_id"))
            elif style == 6:
                if not comp.get("sku_id"):
                    problems.append(Problem(path, "a premium button needs sku_id"))
            elif not custom_id or comp.get("url") is not None:
                problems.append(Problem(path, "a non-link button needs custom_id and no url"))
            if style != 6 and not comp.get("label") and not comp.get("emoji"):
                problems.append(Problem(path, "a button needs a label or an emoji"))
    return problems


def _walk_components(components: Any, prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(components, list):
        return
    for i, comp in enumerate(components):
        if not isinstance(comp, Mapping):
            continue
        path = f"{prefix}[{i}]"
        yield path, comp
        yield from _walk_components(comp.get("components"), f"{path}.components")
        for key in ("accessory", "component"):
            child = comp.get(key)
            if isinstance(child, Mapping):
                yield f"{path}.{key}", child


def message_problems(
    body: Any, *, prefix: str = "", require_content: bool = False, file_count: int = 0
) -> list[Problem]:
    """Check a message body (create, edit, webhook, callback data) against Discord's limits."""
    if not isinstance(body, Mapping):
        return []
    p = f"{prefix}." if prefix else ""
    problems: list[Problem] = []
    content = body.get("content")
    if isinstance(content, str) and len(content) > MESSAGE_CONTENT_LIMIT:
        problems.append(
            Problem(
                f"{p}content",
                f"{len(content)} characters; at most {MESSAGE_CONTENT_LIMIT}",
                "BASE_TYPE_MAX_LENGTH",
            )
        )
    embeds = body.get("embeds")
    if isinstance(embeds, list):
        good = [e for e in embeds if isinstance(e, Mapping)]
        total = sum(_embed_chars(e) for e in good)
        if total > EMBED_TOTAL_LIMIT:
            problems.append(
                Problem(
                    f"{p}embeds",
                    f"{total} characters across embeds; at most {EMBED_TOTAL_LIMIT}",
                    "MAX_EMBED_SIZE_EXCEEDED",
                )
            )
        for i, embed in enumerate(good):
            fields = embed.get("fields")
            if isinstance(fields, list) and len(fields) > EMBED_FIELDS_LIMIT:
                problems.append(
                    Problem(f"{p}embeds[{i}].fields", f"{len(fields)} fields; at most 25")
                )
    flags = body.get("flags") if isinstance(body.get("flags"), int) else 0
    problems += _component_problems(body.get("components"), flags or 0, f"{p}components")
    mentions = body.get("allowed_mentions")
    if isinstance(mentions, Mapping):
        parse = mentions.get("parse") or []
        for kind in ("users", "roles"):
            if kind in parse and mentions.get(kind):
                problems.append(
                    Problem(
                        f"{p}allowed_mentions",
                        f'parse contains "{kind}" and {kind} is a non-empty list; they are '
                        "mutually exclusive",
                    )
                )
    if require_content and not (
        content
        or embeds
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or file_count
    ):
        problems.append(Problem(prefix, "Cannot send an empty message", "50006"))
    return problems


def _option_problems(options: Any, path: str, depth: int) -> list[Problem]:  # noqa: C901 (Discord's option rules, one per branch)
    if not isinstance(options, list):
        return []
    problems: list[Problem] = []
    names: set[str] = set()
    seen_optional = False
    for i, opt in enumerate(options):
        if not isinstance(opt, Mapping):
            continue
        here = f"{path}[{i}]"
        name = opt.get("name")
        if isinstance(name, str):
            if name in names:
                problems.append(Problem(f"{here}.name", f"duplicate option name {name!r}"))
            names.add(name)
            if name != name.lower() or not _NAME_CHARS.match(name):
                problems.append(Problem(f"{here}.name", f"invalid option name {name!r}"))
        otype = opt.get("type")
        if otype in (1, 2):
            if otype == 2 and depth > 0:
                problems.append(Problem(here, "a subcommand group may only be top-level"))
            if otype == 1 and depth > 1:
                problems.append(Problem(here, "subcommands nest at most two levels deep"))
            sub = opt.get("options") or []
            if otype == 2 and any(isinstance(s, Mapping) and s.get("type") != 1 for s in sub):
                problems.append(Problem(f"{here}.options", "a group may only hold subcommands"))
            problems += _option_problems(sub, f"{here}.options", depth + 1)
            continue
        if opt.get("required"):
            if seen_optional:
                problems.append(
                    Problem(f"{here}.required", "required options must be placed before optional")
                )
        else:
            seen_optional = True
        if opt.get("autocomplete") and opt.get("choices"):
            problems.append(Problem(here, "autocomplete and choices are mutually exclusive"))
    return problems


def _command_chars(node: Mapping[str, Any]) -> int:
    total = len(str(node.get("name") or "")) + len(str(node.get("description") or ""))
    for choice in node.get("choices") or []:
        if isinstance(choice, Mapping):
            total += len(str(choice.get("name") or "")) + len(str(choice.get("value") or ""))
    for opt in node.get("options") or []:
        if isinstance(opt, Mapping):
            total += _command_chars(opt)
    return total


def command_problems(commands: Any) -> list[Problem]:
    """Check a bulk command overwrite against the rules the schema does not carry."""
    if not isinstance(commands, list):
        return []
    problems: list[Problem] = []
    seen: set[tuple[object, object]] = set()
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, Mapping):
            continue
        here = f"[{i}]"
        ctype = cmd.get("type") or 1
        name = cmd.get("name")
        key = (ctype, name)
        if key in seen:
            problems.append(Problem(f"{here}.name", f"duplicate command name {name!r}"))
        seen.add(key)
        if ctype == 1:
            if isinstance(name, str) and (name != name.lower() or not _NAME_CHARS.match(name)):
                problems.append(Problem(f"{here}.name", f"invalid command name {name!r}"))
            if not cmd.get("description"):
                problems.append(Problem(f"{here}.description", "a slash command needs one"))
            problems += _option_problems(cmd.get("options"), f"{here}.options", 0)
            chars = _command_chars(cmd)
            if chars > COMMAND_TOTAL_CHARS_LIMIT:
                problems.append(
                    Problem(
                        here, f"{chars} characters in names, descriptions and choices; at most 4000"
                    )
                )
    return problems


def autocomplete_problems(data: Any) -> list[Problem]:
    """Check autocomplete choices (type 8 callback data)."""
    if not isinstance(data, Mapping):
        return []
    problems = []
    for i, choice in enumerate(data.get("choices") or []):
        if not isinstance(choice, Mapping):
            continue
        name = choice.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            problems.append(
                Problem(f"data.choices[{i}].name", "a choice name has 1-100 characters")
            )
        value = choice.get("value")
        if isinstance(value, str) and len(value) > 100:
            problems.append(Problem(f"data.choices[{i}].value", "a string value has at most 100"))
    return problems


def errors_body(problems: list[Problem]) -> dict[str, Any]:
    """Build Discord's ``Invalid Form Body`` error JSON (code 50035) for these problems."""
    tree: dict[str, Any] = {}
    for problem in problems:
        node = tree
        for part in re.findall(r"[^.\[\]]+", problem.path):
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": problem.code, "message": problem.message})
    return {"code": 50035, "message": "Invalid Form Body", "errors": tree}

"""The request checks: OpenAPI schema per route plus the limits the schema does not carry."""

from __future__ import annotations

from typing import Any

import pytest

from tests.discord_emulator.validate import (
    command_problems,
    errors_body,
    message_problems,
    schema_problems,
)

CREATE = "/channels/{channel_id}/messages"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
SYNC = "/applications/{application_id}/commands"


def paths(problems: list[Any]) -> list[str]:
    return [p.path for p in problems]


def button(custom_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": 2, "style": 1, "custom_id": custom_id, "label": custom_id, **extra}


def row(*components: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(components)}


def test_valid_message_as_discord_py_sends_it_passes() -> None:
    body = {
        "content": "hello",
        "embeds": [
            {"title": "t", "url": "https://example.org/a", "timestamp": "2025-01-01T00:00:00+00:00"}
        ],
        "components": [row(button("a"), button("b"))],
        "allowed_mentions": {"parse": [], "users": [123, "456"], "replied_user": False},
        "attachments": [{"id": 0, "filename": "f.csv"}],
        "nonce": "outbox-1",
        "enforce_nonce": True,
        "tts": False,
    }
    assert schema_problems(CREATE, "POST", body) == []
    assert message_problems(body, require_content=True, file_count=1) == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"embeds": [{"title": "x" * 257}]}, "embeds[0].title"),
        ({"embeds": [{"description": "x" * 4097}]}, "embeds[0].description"),
        ({"embeds": [{"url": "feed/relative"}]}, "embeds[0].url"),
        ({"embeds": [{"timestamp": "yesterday"}]}, "embeds[0].timestamp"),
        ({"embeds": [{"color": -1}]}, "embeds[0].color"),
        ({"embeds": [{}] * 11}, "embeds"),
        ({"components": [row(button("a", label="x" * 81))]}, "components[0].components[0].label"),
        ({"nonce": "x" * 26}, "nonce"),
        ({"content": 5}, "content"),
    ],
)
def test_schema_violation_names_the_field(body: dict[str, Any], path: str) -> None:
    problems = schema_problems(CREATE, "POST", body)
    assert paths(problems) == [path]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"content": "x" * 2001}, "content"),
        ({"embeds": [{"description": "x" * 4000}, {"description": "y" * 2001}]}, "embeds"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, "embeds[0].fields"),
        ({"components": [row(button(f"b{i}")) for i in range(6)]}, "components"),
        ({"components": [row(*(button(f"b{i}") for i in range(6)))]}, "components[0].components"),
        (
            {"components": [row(button("a")), row(button("a"))]},
            "components[1].components[0].custom_id",
        ),
        (
            {"components": [row({"type": 2, "style": 5, "label": "l", "custom_id": "c"})]},
            "components[0].components[0]",
        ),
        (
            {"components": [row({"type": 2, "style": 1, "label": "l"})]},
            "components[0].components[0]",
        ),
        ({"components": [button("a")]}, "components[0].type"),
        (
            {"content": "x", "allowed_mentions": {"parse": ["users"], "users": [1]}},
            "allowed_mentions",
        ),
        ({}, ""),
    ],
)
def test_limits_outside_the_schema(body: dict[str, Any], path: str) -> None:
    assert paths(message_problems(body, require_content=True)) == [path]


def test_empty_message_is_fine_with_a_file_or_on_edit() -> None:
    assert message_problems({}, require_content=True, file_count=1) == []
    assert message_problems({"content": ""}) == []


def test_callback_is_validated_against_its_own_type() -> None:
    assert (
        schema_problems(CALLBACK, "POST", {"type": 4, "data": {"content": "ok", "flags": 64}}) == []
    )
    problems = schema_problems(CALLBACK, "POST", {"type": 4, "data": {"content": "x" * 2001}})
    assert paths(problems) == ["data.content"]
    choices = {"type": 8, "data": {"choices": [{"name": "n", "value": "v"}] * 26}}
    assert paths(schema_problems(CALLBACK, "POST", choices)) == ["data.choices"]
    assert paths(schema_problems(CALLBACK, "POST", {"type": [4]})) != []


def test_command_sync_rules() -> None:
    good = [
        {
            "name": "watch",
            "description": "Manage watches",
            "type": 1,
            "options": [
                {
                    "type": 1,
                    "name": "add",
                    "description": "Add",
                    "options": [
                        {"type": 3, "name": "query", "description": "q", "required": True},
                        {"type": 4, "name": "limit", "description": "l", "required": False},
                    ],
                }
            ],
            "default_member_permissions": 32,
        }
    ]
    assert schema_problems(SYNC, "PUT", good) == []
    assert command_problems(good) == []
    bad = [
        {"name": "Watch", "description": "d"},
        {"name": "dup", "description": ""},
        {
            "name": "order",
            "description": "d",
            "options": [
                {"type": 3, "name": "a", "description": "a"},
                {"type": 3, "name": "b", "description": "b", "required": True},
            ],
        },
        {"name": "order", "description": "again"},
    ]
    assert paths(command_problems(bad)) == [
        "[0].name",
        "[1].description",
        "[2].options[1].required",
        "[3].name",
    ]


def test_errors_body_has_discord_shape() -> None:
    body = errors_body(schema_problems(CREATE, "POST", {"embeds": [{"title": "x" * 300}]}))
    assert body["code"] == 50035
    error = body["errors"]["embeds"]["0"]["title"]["_errors"][0]
    assert error["message"] == "300 characters; maxLength is 256"

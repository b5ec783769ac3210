"""Malformed requests and gateway frames get Discord's answers and are recorded, never crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.discord_emulator import DiscordEmulator, default_guild

GENERAL = default_guild().channel("general").id
AUTH = {"Authorization": "Bot emulator-token"}


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator(strict=False)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any, str]:
    async with http.request(method, url, **kwargs) as resp:
        text = await resp.text()
        body = json.loads(text) if resp.headers.get("Content-Type") == "application/json" else text
        return resp.status, body, resp.headers.get("Content-Type", "")


async def test_invalid_json_is_400_50109(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    url = f"{emu.api_url}/channels/{GENERAL}/messages"
    headers = {**AUTH, "Content-Type": "application/json"}
    status, body, ctype = await call(http, "POST", url, data=b"{nope", headers=headers)
    assert (status, body["code"], ctype) == (400, 50035, "application/json")
    assert "invalid JSON" in emu.violations[0].message


async def test_missing_token_is_401(emu: DiscordEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await call(http, "GET", f"{emu.api_url}/users/@me")
    assert status == 401 and body["message"] == "401: Unauthorized"
    assert emu.violations[0].field == "Authorization"


async def test_non_object_body_names_the_problem(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    url = f"{emu.api_url}/channels/{GENERAL}/messages"
    status, body, _ = await call(http, "POST", url, json=[1, 2], headers=AUTH)
    assert status == 400 and body["code"] == 50035
    assert emu.channel_messages(GENERAL) == []


async def test_unknown_channel_and_message_ids(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        http,
        "POST",
        f"{emu.api_url}/channels/not-a-number/messages",
        json={"content": "x"},
        headers=AUTH,
    )
    assert (status, body["code"]) == (404, 10003)
    status, body, _ = await call(
        http, "GET", f"{emu.api_url}/channels/{GENERAL}/messages/123", headers=AUTH
    )
    assert (status, body["code"]) == (404, 10008)
    assert emu.violations == []


async def test_unknown_interaction_and_webhook(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(
        http,
        "POST",
        f"{emu.api_url}/interactions/1/forged/callback",
        json={"type": 4, "data": {"content": "x"}},
    )
    assert (status, body["code"]) == (404, 10062)
    status, body, _ = await call(
        http, "POST", f"{emu.api_url}/webhooks/{emu.application_id}/forged", json={"content": "x"}
    )
    assert (status, body["code"]) == (404, 10015)


async def test_garbage_multipart_is_answered(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("payload_json", "{broken")
    form.add_field("files[0]", b"abc", filename="a.txt")
    form.add_field("surprise", "x")
    status, body, _ = await call(
        http, "POST", f"{emu.api_url}/channels/{GENERAL}/messages", data=form, headers=AUTH
    )
    assert status == 400 and body["code"] == 50035
    assert {v.field for v in emu.violations} >= {"payload_json", "surprise"}


async def test_list_messages_rejects_bad_limit(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    url = f"{emu.api_url}/channels/{GENERAL}/messages"
    for limit in ("0", "101", "ten"):
        status, _, _ = await call(http, "GET", url, params={"limit": limit}, headers=AUTH)
        assert status == 400


async def test_message_create_edit_fetch_over_raw_http(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    url = f"{emu.api_url}/channels/{GENERAL}/messages"
    status, created, _ = await call(http, "POST", url, json={"content": "one"}, headers=AUTH)
    assert status == 200 and created["author"]["id"] == str(emu.bot_id)
    status, edited, _ = await call(
        http, "PATCH", f"{url}/{created['id']}", json={"content": "two"}, headers=AUTH
    )
    assert edited["content"] == "two" and edited["edited_timestamp"]
    status, listed, _ = await call(http, "GET", url, headers=AUTH)
    assert [m["content"] for m in listed] == ["two"]
    stored = emu.message(int(created["id"]))
    assert stored.history[0]["content"] == "one"


async def test_gateway_rejects_garbage_frames(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(emu.gateway_url) as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10
        await ws.send_str("not json")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4002
    async with http.ws_connect(emu.gateway_url) as ws:
        await ws.receive_json()
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0}})
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4004
    async with http.ws_connect(emu.gateway_url) as ws:
        await ws.receive_json()
        await ws.send_json(
            {"op": 6, "d": {"token": "emulator-token", "session_id": "nope", "seq": 3}}
        )
        assert await ws.receive_json() == {"op": 9, "d": False}
    messages = [v.message for v in emu.violations]
    assert messages == ["frame is not JSON", "IDENTIFY with a wrong token"]


async def test_gateway_identify_ready_heartbeat_over_raw_websocket(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(emu.gateway_url) as ws:
        await ws.receive_json()
        await ws.send_json({"op": 1, "d": None})
        assert await ws.receive_json() == {"op": 11}
        await ws.send_json({"op": 2, "d": {"token": "emulator-token", "intents": 513}})
        ready = await ws.receive_json()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["resume_gateway_url"] == emu.resume_gateway_url
        guild = await ws.receive_json()
        assert guild["t"] == "GUILD_CREATE" and guild["d"]["member_count"] == 3
        await emu.wait_until_ready()
    assert emu.violations == []

"""The emulated websocket gateway: HELLO, heartbeats, IDENTIFY/READY, RESUME with replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.discord_emulator.server import DiscordEmulator

log = logging.getLogger(__name__)

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_VOICE_STATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_MESSAGE_CONTENT = 1 << 15
HEARTBEAT_INTERVAL_MS = 41_250
# Discord keeps a session resumable for a while; the emulator keeps this many events.
REPLAY_BUFFER = 10_000


class Connection:
    """One websocket connection from the bot."""

    def __init__(self, ws: web.WebSocketResponse, path: str) -> None:
        self.ws = ws
        self.path = path
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one JSON text frame; return False when the socket is gone."""
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                await self.ws.send_str(json.dumps(payload))
            except (ConnectionError, RuntimeError):
                return False
            return True


@dataclass
class GatewaySession:
    """A gateway session: identify payload, sequence and the events sent in it."""

    session_id: str
    identify: dict[str, Any]
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    connection: Connection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def intents(self) -> int:
        """The intents the bot identified with."""
        value = self.identify.get("intents")
        return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class ResumeRecord:
    """A successful RESUME: which session, from which sequence, how many events replayed."""

    session_id: str
    from_seq: int
    replayed: list[str]
    path: str


class Gateway:
    """Serve the websocket gateway for one emulator."""

    def __init__(self, emu: DiscordEmulator) -> None:
        self._emu = emu
        self.sessions: dict[str, GatewaySession] = {}
        self.current: GatewaySession | None = None
        self.connections: list[str] = []
        self.resumes: list[ResumeRecord] = []
        self.ready_count = 0
        self.received: list[dict[str, Any]] = []
        self._open = asyncio.Event()
        self._open.set()
        self._live: set[Connection] = set()

    # -- driver side -------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH to the current session (kept for replay if the bot is offline)."""
        session = self.current
        if session is None:
            raise RuntimeError(f"no gateway session to dispatch {event} to; is the bot running?")
        await self._send_dispatch(session, event, data)

    async def _send_dispatch(
        self, session: GatewaySession, event: str, data: dict[str, Any]
    ) -> None:
        async with session.lock:
            session.seq += 1
            payload = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
            session.sent.append(payload)
            del session.sent[:-REPLAY_BUFFER]
            if session.connection is not None:
                await session.connection.send(payload)

    async def drop(self, code: int = 4000) -> None:
        """Close every live websocket from the server side (a dropped connection)."""
        for conn in list(self._live):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=code, message=b"emulated outage")
        for session in self.sessions.values():
            session.connection = None

    def hold(self) -> None:
        """Accept new websocket connections but send no HELLO until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Let held connections proceed."""
        self._open.set()

    async def close(self) -> None:
        """Close all connections (emulator shutdown)."""
        self.release()
        await self.drop(code=1001)

    # -- websocket handler ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one websocket connection."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(ws, request.path)
        self._live.add(conn)
        self.connections.append(request.path_qs)
        self._emu._notify()
        try:
            await self._open.wait()
            await conn.send({"op": OP_HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    self._emu._gateway_violation("binary frames are not expected from the bot")
                    await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    self._emu._gateway_violation("frame is not JSON")
                    await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                if not isinstance(frame, dict):
                    self._emu._gateway_violation("frame is not a JSON object")
                    await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                self.received.append(frame)
                await self._on_frame(conn, frame)
        finally:
            self._live.discard(conn)
            for session in self.sessions.values():
                if session.connection is conn:
                    session.connection = None
            self._emu._notify()
        return ws

    async def _on_frame(self, conn: Connection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        data = frame.get("d")
        if op == OP_HEARTBEAT:
            await conn.send({"op": OP_HEARTBEAT_ACK})
        elif op == OP_IDENTIFY:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == OP_RESUME:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif op == OP_REQUEST_MEMBERS:
            await self._request_members(conn, data if isinstance(data, dict) else {})
        elif op in (OP_PRESENCE, OP_VOICE_STATE):
            pass
        else:
            self._emu._gateway_violation(f"unknown opcode {op!r}")
            await conn.ws.close(code=4001, message=b"Unknown opcode")

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        token = data.get("token")
        if not self._emu._token_ok(token):
            self._emu._gateway_violation("IDENTIFY with a wrong token")
            await conn.ws.close(code=4004, message=b"Authentication failed")
            return
        if not isinstance(data.get("intents"), int):
            self._emu._gateway_violation("IDENTIFY without intents")
            await conn.ws.close(code=4013, message=b"Invalid intent(s)")
            return
        session = GatewaySession(f"emulated-session-{len(self.sessions) + 1}", data)
        self.sessions[session.session_id] = session
        self.current = session
        session.connection = conn
        ready = self._emu._ready_payload(session)
        await self._send_dispatch(session, "READY", ready)
        for guild in self._emu.guilds:
            await self._send_dispatch(session, "GUILD_CREATE", self._emu._guild_payload(guild))
        self.ready_count += 1
        self._emu._notify()

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or not self._emu._token_ok(data.get("token")):
            await conn.send({"op": OP_INVALID_SESSION, "d": False})
            return
        seq = data.get("seq")
        from_seq = seq if isinstance(seq, int) else 0
        async with session.lock:
            old = session.connection
            if old is not None and old is not conn:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await old.ws.close(code=4000)
            session.connection = conn
            missed = [p for p in session.sent if p["s"] > from_seq]
            for payload in missed:
                await conn.send(payload)
        await self._send_dispatch(session, "RESUMED", {})
        self.current = session
        self.resumes.append(
            ResumeRecord(session.session_id, from_seq, [p["t"] for p in missed], conn.path)
        )
        self._emu._notify()

    async def _request_members(self, conn: Connection, data: dict[str, Any]) -> None:
        session = next((s for s in self.sessions.values() if s.connection is conn), None)
        if session is None:
            self._emu._gateway_violation("REQUEST_GUILD_MEMBERS before IDENTIFY")
            return
        try:
            guild = self._emu.guild(int(data.get("guild_id") or 0))
        except (KeyError, ValueError):
            self._emu._gateway_violation(
                f"REQUEST_GUILD_MEMBERS for unknown guild {data.get('guild_id')}"
            )
            return
        members = self._emu._member_payloads(guild)
        wanted = data.get("user_ids")
        if wanted:
            ids = {str(u) for u in (wanted if isinstance(wanted, list) else [wanted])}
            members = [m for m in members if m["user"]["id"] in ids]
        query = data.get("query") or ""
        if isinstance(query, str) and query:
            members = [m for m in members if m["user"]["username"].startswith(query)]
        limit = data.get("limit") or 0
        if isinstance(limit, int) and limit > 0:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

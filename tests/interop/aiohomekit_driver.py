#!/usr/bin/env python3
"""Drives a running hap-bridge with aiohomekit, the controller library of Home Assistant.

An independent HAP controller implementation talks to the bridge over real TCP on loopback:
pair-setup (wrong code, then right code, then refused while paired), pair-verify on many fresh
connections, the attribute database, reads, error statuses, a write, events triggered through
the admin API, pairings management, unpairing (other sessions of the removed controller closed)
and pair-verify refused afterwards. Every step prints one JSON line on stdout (`{"step": ..., "ok": true, ...}` plus its
figures); the first failure prints `"ok": false` with the error and exits 1.

    python aiohomekit_driver.py --host 127.0.0.1 --port 51826 \
        --api http://127.0.0.1:8080 --setup-code 031-45-154

Used by `tests/e2e/interop.rs`; needs `aiohomekit>=4,<5` (see tests/run.sh).
"""

from __future__ import annotations

import argparse
import base64
import asyncio
import json
import logging
import math
import statistics
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from aiohomekit.characteristic_cache import CharacteristicCacheMemory
from aiohomekit.controller.ip.connection import HomeKitConnection, SecureHomeKitConnection
from aiohomekit.controller.ip.controller import IpController
from aiohomekit.controller.ip.pairing import IpPairing
from aiohomekit.exceptions import (
    AccessoryDisconnectedError,
    AuthenticationError,
    HttpErrorResponse,
    UnavailableError,
)
from aiohomekit.protocol.tlv import TLV
from aiohomekit.protocol import (
    get_session_keys,
    perform_pair_setup_part1,
    perform_pair_setup_part2,
)

# Short HAP types (HAP §6.2: Apple UUIDs are sent in short form).
ACCESSORY_INFORMATION = "3E"
PROTOCOL_INFORMATION = "A2"
MOTION_SENSOR = "85"
IDENTIFY = "14"
MOTION_DETECTED = "22"
PROGRAMMABLE_SWITCH_EVENT = "73"

STEP_TIMEOUT = 30.0
CONCURRENT_SESSIONS = 8
EVENT_TIMEOUT = 5.0
# Longer than any event coalescing window (HAP §5.8: ADK 1 s, HAP-python 0.5 s).
QUIET = 1.2
HTTP_TIMEOUT = 5.0


class StepFailed(Exception):
    """A check of a step did not hold."""


def check(cond: bool, message: str) -> None:
    if not cond:
        raise StepFailed(message)


def report(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, "ok": True, **fields}, sort_keys=False), flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


# ---- admin API ----------------------------------------------------------------------------


def api_request(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def api_status(base: str) -> dict[str, Any]:
    status, body = api_request(base, "GET", "/api/v1/homekit/status")
    check(status == 200, f"GET /api/v1/homekit/status: HTTP {status}: {body!r}")
    check(isinstance(body, dict), f"GET /api/v1/homekit/status: not a JSON object: {body!r}")
    return body


def api_motion(base: str, camera: str, detected: bool) -> None:
    path = f"/api/v1/homekit/cameras/{camera}/motion"
    status, body = api_request(base, "POST", path, {"detected": detected})
    check(200 <= status < 300, f"POST {path} {{detected: {detected}}}: HTTP {status}: {body!r}")


# ---- HAP helpers --------------------------------------------------------------------------


async def plain_connection(host: str, port: int) -> HomeKitConnection:
    conn = HomeKitConnection(None, [host], port)
    await asyncio.wait_for(conn.ensure_connection(), STEP_TIMEOUT)
    return conn


async def pair_setup(conn: HomeKitConnection, code: str, ios_id: str) -> dict[str, Any]:
    """Runs M1..M6 over `conn`; raises aiohomekit's exception for a TLV error."""

    async def drive(gen):
        request, expected = gen.send(None)
        while True:
            response = await conn.post_tlv("/pair-setup", body=request, expected=expected)
            try:
                request, expected = gen.send(response)
            except StopIteration as done:
                return done.value

    salt, pub = await drive(perform_pair_setup_part1(with_auth=False))
    return await drive(perform_pair_setup_part2(code, ios_id, salt, pub))


async def verified_connection(pairing_data: dict[str, Any]) -> SecureHomeKitConnection:
    """A fresh TCP connection with a completed pair-verify."""
    conn = SecureHomeKitConnection(None, pairing_data)
    try:
        await asyncio.wait_for(conn.ensure_connection(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        await conn.close()
        raise StepFailed(f"pair-verify did not complete in {STEP_TIMEOUT}s: last error "
                         f"{conn.last_connector_error!r}")
    check(conn.is_connected, f"pair-verify ended unconnected: {conn.last_connector_error!r}")
    return conn


async def pair_verify_raw(host: str, port: int, pairing_data: dict[str, Any]) -> None:
    """Pair-verify on a fresh plain connection; raises the controller's error if refused.

    All TLV items are passed on (`post_tlv(expected=...)` would drop an Error item at M2 and
    turn a refusal into "missing public key"), so a refusal at M2 or M4 raises its kTLVError.
    """
    conn = await plain_connection(host, port)
    try:
        gen = get_session_keys(pairing_data)
        request, _ = gen.send(None)
        while True:
            response = await conn.post_tlv("/pair-verify", body=request)
            try:
                request, _ = gen.send(response)
            except StopIteration:
                return
    finally:
        await conn.close()


async def assert_session_closed(conn: SecureHomeKitConnection, what: str) -> None:
    """`conn` (with `closing` set, so it does not reconnect) must be dropped by the accessory."""
    deadline = time.monotonic() + 2.0
    while conn.is_connected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if conn.is_connected:
        try:
            resp = await asyncio.wait_for(conn.get("/accessories"), 2.0)
            raise StepFailed(f"{what} still works: GET /accessories -> HTTP {resp.code}")
        except (AccessoryDisconnectedError, asyncio.TimeoutError, ConnectionError):
            pass
    await conn.close()


async def read_with_flags(pairing: IpPairing, aid: int, iid: int) -> dict[str, Any]:
    path = f"/characteristics?id={aid}.{iid}&meta=1&perms=1&type=1&ev=1"
    resp = await asyncio.wait_for(pairing.connection.get(path), STEP_TIMEOUT)
    body = json.loads(bytes(resp.body))
    check(resp.code == 200, f"GET {path}: HTTP {resp.code}: {body}")
    rows = body.get("characteristics", [])
    check(len(rows) == 1, f"GET {path}: {body}")
    return rows[0]


def short_type(t: str) -> str:
    """HAP §6.2 short form of an Apple UUID; other UUIDs unchanged (upper case)."""
    t = t.upper()
    if len(t) == 36 and t.endswith("-0000-1000-8000-0026BB765291"):
        return t[:8].lstrip("0") or "0"
    return t


def services_of(acc: dict[str, Any]) -> list[dict[str, Any]]:
    return acc.get("services", [])


def find_service(acc: dict[str, Any], stype: str) -> dict[str, Any] | None:
    for svc in services_of(acc):
        if short_type(svc.get("type", "")) == stype:
            return svc
    return None


def find_char(svc: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for ch in svc.get("characteristics", []):
        if short_type(ch.get("type", "")) == ctype:
            return ch
    return None


def database_violations(accessories: list[dict[str, Any]]) -> list[str]:
    """HAP §6.1/§6.2 rules on the raw GET /accessories JSON."""
    out = []
    aids = [a.get("aid") for a in accessories]
    if len(set(aids)) != len(aids):
        out.append(f"duplicate aids {aids}")
    for acc in accessories:
        aid = acc.get("aid")
        iids: list[int] = []
        info = find_service(acc, ACCESSORY_INFORMATION)
        if info is None:
            out.append(f"aid {aid}: no AccessoryInformation service")
        elif info.get("iid") != 1:
            out.append(f"aid {aid}: AccessoryInformation has iid {info.get('iid')}, HAP §6.1 wants 1")
        for svc in services_of(acc):
            stype = svc.get("type", "")
            iids.append(svc.get("iid"))
            if stype != short_type(stype):
                out.append(f"aid {aid} service {stype}: type not in HAP short form")
            for ch in svc.get("characteristics", []):
                where = f"aid {aid} iid {ch.get('iid')} type {ch.get('type')}"
                iids.append(ch.get("iid"))
                for key in ("iid", "type", "perms", "format"):
                    if key not in ch:
                        out.append(f"{where}: missing {key!r}")
                perms = ch.get("perms", [])
                if "pr" in perms and "value" not in ch:
                    out.append(f"{where}: readable but no 'value'")
                if "pr" not in perms and "value" in ch:
                    out.append(f"{where}: not readable but carries 'value' (HAP §6.2)")
        if any(not isinstance(i, int) or i < 1 for i in iids):
            out.append(f"aid {aid}: non-positive or missing iid in {iids}")
        if len(set(iids)) != len(iids):
            out.append(f"aid {aid}: iids not unique across services and characteristics: {iids}")
    return out


# ---- the steps ----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    host, port, api, code = args.host, args.port, args.api, args.setup_code
    step = "status_unpaired"
    try:
        st = api_status(api)
        check(st.get("running") is True, f"status.running is {st.get('running')!r}")
        check(st.get("paired") is False, f"fresh bridge reports paired={st.get('paired')!r}")
        check(st.get("setup_code") == code,
              f"status.setup_code is {st.get('setup_code')!r}, expected the --setup-code")
        check(st.get("port") == port, f"status.port {st.get('port')!r} != HAP port {port}")
        report(step, accessory_count=st.get("accessory_count"), bridge_name=st.get("bridge_name"))

        # (1) Wrong setup code: M4 carries kTLVError_Authentication (HAP §2.2).
        step = "pair_setup_wrong_code"
        wrong = "111-22-333" if code != "111-22-333" else "222-33-444"
        conn = await plain_connection(host, port)
        try:
            await asyncio.wait_for(pair_setup(conn, wrong, str(uuid.uuid4())), STEP_TIMEOUT)
            raise StepFailed("pair-setup with a wrong setup code succeeded")
        except AuthenticationError as e:
            refusal = f"AuthenticationError({e})"
        finally:
            await conn.close()
        check(api_status(api).get("paired") is False, "bridge paired after a wrong code")
        report(step, refused_with=refusal)

        # (2) Right code on a fresh connection.
        step = "pair_setup"
        ios_id = str(uuid.uuid4())  # as aiohomekit's own IpDiscovery.async_start_pairing
        conn = await plain_connection(host, port)
        t0 = time.perf_counter()
        try:
            pairing_data = await asyncio.wait_for(pair_setup(conn, code, ios_id), STEP_TIMEOUT)
        finally:
            await conn.close()
        setup_s = time.perf_counter() - t0
        pairing_data.update(
            AccessoryIP=host, AccessoryIPs=[host], AccessoryPort=port, Connection="IP"
        )
        st = api_status(api)
        check(st.get("paired") is True, f"after pair-setup status.paired is {st.get('paired')!r}")
        check(st.get("setup_code") in (None, ""),
              "status still shows the setup code after pairing")
        report(step, ms=ms(setup_s), accessory_pairing_id=pairing_data["AccessoryPairingID"])

        # Already paired: a new pair-setup gets Unavailable at M2, /identify gets 400 (HAP §2.5,
        # §5.1).
        step = "refused_while_paired"
        conn = await plain_connection(host, port)
        try:
            await asyncio.wait_for(pair_setup(conn, code, str(uuid.uuid4())), STEP_TIMEOUT)
            raise StepFailed("a second pair-setup succeeded while paired")
        except UnavailableError as e:
            setup_refusal = f"UnavailableError({e})"
        finally:
            await conn.close()
        conn = await plain_connection(host, port)
        try:
            resp = await asyncio.wait_for(conn.post("/identify", b""), STEP_TIMEOUT)
            identify_code = resp.code
        except HttpErrorResponse as e:
            identify_code = e.response.code
        finally:
            await conn.close()
        check(identify_code == 400, f"POST /identify while paired: HTTP {identify_code}, want 400")
        report(step, pair_setup=setup_refusal, identify_http=identify_code)

        # (3) Pair-verify + GET /accessories on fresh connections.
        step = "pair_verify"
        verify, total = [], []
        for i in range(args.verify_rounds):
            t0 = time.perf_counter()
            sconn = await verified_connection(pairing_data)
            t1 = time.perf_counter()
            try:
                resp = await asyncio.wait_for(sconn.get("/accessories"), STEP_TIMEOUT)
            finally:
                await sconn.close()
            t2 = time.perf_counter()
            check(resp.code == 200, f"round {i}: GET /accessories HTTP {resp.code}")
            check(b'"accessories"' in bytes(resp.body), f"round {i}: body has no accessories")
            verify.append(t1 - t0)
            total.append(t2 - t0)
        report(
            step,
            rounds=args.verify_rounds,
            verify_plus_accessories_median_ms=ms(statistics.median(total)),
            verify_plus_accessories_p90_ms=ms(sorted(total)[math.ceil(0.9 * len(total)) - 1]),
            verify_plus_accessories_max_ms=ms(max(total)),
            verify_only_median_ms=ms(statistics.median(verify)),
        )

        # HAP §5.9: at least 8 simultaneous sessions; all verified at once, each answers.
        step = "concurrent_sessions"
        t0 = time.perf_counter()
        sessions = await asyncio.gather(
            *(verified_connection(pairing_data) for _ in range(CONCURRENT_SESSIONS)))
        try:
            resps = await asyncio.wait_for(
                asyncio.gather(*(c.get("/accessories") for c in sessions)), STEP_TIMEOUT)
        finally:
            for c in sessions:
                await c.close()
        codes = [r.code for r in resps]
        check(all(c == 200 for c in codes), f"GET /accessories on {len(codes)} sessions: {codes}")
        report(step, sessions=len(sessions), ms=ms(time.perf_counter() - t0))

        # From here on, aiohomekit's own pairing object (what Home Assistant uses).
        controller = IpController(char_cache=CharacteristicCacheMemory(), zeroconf_instance=None)
        pairing = IpPairing(controller, pairing_data)
        try:
            await steps_on_pairing(args, pairing, pairing_data, ios_id)
        finally:
            await pairing.close()

        # After unpairing, the old long-term keys must no longer verify (HAP §3 M3: unknown
        # controller -> Authentication).
        step = "pair_verify_after_unpair"
        try:
            await asyncio.wait_for(pair_verify_raw(host, port, pairing_data), STEP_TIMEOUT)
            raise StepFailed("pair-verify with a removed pairing succeeded")
        except AuthenticationError as e:
            report(step, refused_with=f"AuthenticationError({e})")
    except Exception as e:  # noqa: BLE001 - every failure becomes one JSON line
        fail(getattr(e, "step", None) or step, e)


async def steps_on_pairing(
    args: argparse.Namespace, pairing: IpPairing, pairing_data: dict[str, Any], ios_id: str
) -> None:
    api = args.api

    def at(step: str):
        return StepContext(step)

    # (4) The attribute database, raw and through aiohomekit's model.
    with at("accessories"):
        await asyncio.wait_for(pairing._ensure_connected(), STEP_TIMEOUT)
        raw = await asyncio.wait_for(pairing.connection.get_json("/accessories"), STEP_TIMEOUT)
        accessories = raw.get("accessories")
        check(isinstance(accessories, list) and accessories, f"no accessories in {raw!r}")
        by_aid = {a.get("aid"): a for a in accessories}
        check(1 in by_aid, f"no aid 1 among {sorted(by_aid)}")
        bridge = by_aid[1]
        for stype in (ACCESSORY_INFORMATION, PROTOCOL_INFORMATION):
            check(find_service(bridge, stype) is not None, f"aid 1 has no service {stype}")
        cams = [a for a in accessories if a.get("aid") != 1 and find_service(a, MOTION_SENSOR)]
        check(len(cams) >= 1, "no bridged accessory with a MotionSensor (85) service")
        cam = cams[0]
        cam_aid = cam["aid"]
        motion = find_char(find_service(cam, MOTION_SENSOR), MOTION_DETECTED)
        check(motion is not None, f"aid {cam_aid} MotionSensor has no MotionDetected (22)")
        check("ev" in motion.get("perms", []) and "pr" in motion.get("perms", []),
              f"MotionDetected perms {motion.get('perms')}, expected pr+ev")
        identify = find_char(find_service(bridge, ACCESSORY_INFORMATION), IDENTIFY)
        check(identify is not None, "aid 1 has no Identify (14)")
        check("value" not in identify,
              "Identify carries a value: iOS drops such pairings (hap-reference §6.2)")
        violations = database_violations(accessories)
        check(not violations, "database violations: " + "; ".join(violations))
        parsed = await asyncio.wait_for(pairing.list_accessories_and_characteristics(),
                                        STEP_TIMEOUT)
        check(len(parsed) == len(accessories), "aiohomekit model lost accessories")
        check(pairing.accessories is not None and pairing.accessories.aid(cam_aid) is not None,
              "aiohomekit model has no camera accessory")
        nchars = sum(len(s.get("characteristics", [])) for a in accessories for s in services_of(a))
        report("accessories", accessories=len(accessories), characteristics=nchars,
               camera_aid=cam_aid, bytes=len(json.dumps(raw)))

    # (5) Every readable characteristic in one GET.
    with at("read_all"):
        readable = [
            (a["aid"], ch["iid"], short_type(ch["type"]), ch.get("value"))
            for a in accessories
            for s in services_of(a)
            for ch in s.get("characteristics", [])
            if "pr" in ch.get("perms", [])
        ]
        ids = ",".join(f"{aid}.{iid}" for aid, iid, _, _ in readable)
        resp = await asyncio.wait_for(pairing.connection.get(f"/characteristics?id={ids}"),
                                      STEP_TIMEOUT)
        body = json.loads(bytes(resp.body))
        check(resp.code == 200, f"GET /characteristics of {len(readable)} readable ids: HTTP "
                                f"{resp.code} (HAP §5.2 wants 200 when all succeed): {body!r}")
        rows = body.get("characteristics", [])
        got = {(r.get("aid"), r.get("iid")): r for r in rows}
        check(len(rows) == len(readable) == len(got),
              f"asked {len(readable)} ids, got {len(rows)} rows ({len(got)} distinct)")
        for aid, iid, ctype, db_value in readable:
            row = got.get((aid, iid))
            check(row is not None, f"{aid}.{iid} missing from the response")
            check(row.get("status", 0) == 0, f"{aid}.{iid} (type {ctype}) status {row.get('status')}")
            check("value" in row, f"{aid}.{iid} (type {ctype}) has no value")
            if ctype != PROGRAMMABLE_SWITCH_EVENT and ctype in ("20", "21", "23", "30", "52", "37"):
                check(row["value"] == db_value,
                      f"{aid}.{iid} (type {ctype}) reads {row['value']!r}, /accessories said "
                      f"{db_value!r}")
        # The camera accessory (hap-reference §7): max_streams (2) stream services, a
        # microphone, and TLVs that decode with aiohomekit's own TLV8 reader.
        cam_services = [s for s in services_of(cam) if short_type(s["type"]) == "110"]
        check(len(cam_services) == 2, f"camera has {len(cam_services)} RTP stream services, want 2")
        check(find_service(cam, "112") is not None, "camera has no Microphone service")
        for svc in cam_services:
            for ch in svc.get("characteristics", []):
                ctype = short_type(ch["type"])
                if ctype not in ("114", "115", "116", "120"):
                    continue
                value = got[(cam_aid, ch["iid"])].get("value")
                items = TLV.decode_bytes(base64.b64decode(value or ""))
                check(len(items) > 0, f"camera characteristic {ctype} reads an empty TLV")
                if ctype == "120":
                    check([tuple(i) for i in items] == [(1, bytearray(b"\x00"))],
                          f"Streaming Status reads {items!r}, want available (01 01 00)")
                if ctype == "114":
                    check(b"\x01\x02\x00\x05\x02\x02\xd0\x02\x03\x01\x1e" in base64.b64decode(value),
                          "Supported Video Stream Configuration lacks 1280x720@30")
        via_lib = await pairing.get_characteristics([(aid, iid) for aid, iid, _, _ in readable])
        bad = {k: v for k, v in via_lib.items() if "status" in v and v["status"] != 0}
        check(not bad, f"aiohomekit get_characteristics reports failures {bad}")
        # The optional fields (HAP §5.2): meta, perms, type, ev (this connection's subscription).
        flags = await read_with_flags(pairing, cam_aid, motion["iid"])
        check(flags.get("format") == "bool" and short_type(str(flags.get("type"))) == "22"
              and set(flags.get("perms", [])) >= {"pr", "ev"} and flags.get("ev") is False,
              f"MotionDetected with meta=1&perms=1&type=1&ev=1: {flags}")
        report("read_all", characteristics=len(readable))

    # Error statuses (HAP §5.2, §5.3): unknown id -> -70409 in a 207; read-only write -> -70404;
    # ev on a characteristic without "ev" -> -70406.
    with at("error_statuses"):
        info = find_service(bridge, ACCESSORY_INFORMATION)
        manufacturer = find_char(info, "20")
        check(manufacturer is not None, "aid 1 has no Manufacturer (20)")
        m_iid = manufacturer["iid"]
        bogus_aid = max(by_aid) + 100
        resp = await asyncio.wait_for(
            pairing.connection.get(f"/characteristics?id=1.{m_iid},{bogus_aid}.1"), STEP_TIMEOUT)
        body = json.loads(bytes(resp.body) or b"{}")
        check(resp.code == 207, f"read with an unknown id: HTTP {resp.code}, want 207: {body}")
        rows = {(r.get("aid"), r.get("iid")): r for r in body.get("characteristics", [])}
        check(rows.get((1, m_iid), {}).get("status") == 0 and "value" in rows.get((1, m_iid), {}),
              f"207 row of the good id: {rows.get((1, m_iid))}, want status 0 and a value")
        check(rows.get((bogus_aid, 1), {}).get("status") == -70409,
              f"unknown id row: {rows.get((bogus_aid, 1))}, want status -70409")
        payload = {"characteristics": [
            {"aid": 1, "iid": m_iid, "value": "x"},
            {"aid": 1, "iid": identify["iid"] if identify else 2, "ev": True},
        ]}
        try:
            resp = await asyncio.wait_for(
                pairing.connection.put("/characteristics", json.dumps(payload).encode()),
                STEP_TIMEOUT)
        except HttpErrorResponse as e:
            resp = e.response
        body = json.loads(bytes(resp.body) or b"{}")
        check(resp.code == 207, f"bad writes: HTTP {resp.code}, want 207: {body}")
        rows = {(r.get("aid"), r.get("iid")): r.get("status")
                for r in body.get("characteristics", [])}
        check(rows.get((1, m_iid)) == -70404,
              f"write to read-only Manufacturer: status {rows.get((1, m_iid))}, want -70404")
        check(rows.get((1, identify["iid"])) == -70406,
              f"ev on Identify (no ev perm): status {rows.get((1, identify['iid']))}, "
              "want -70406")
        report("error_statuses", unknown_read=-70409, read_only_write=-70404, ev_unsupported=-70406)

    # (6) A write: Identify on aid 1 (HAP §5.3: all succeed -> 204, empty body).
    with at("write_identify"):
        iid = identify["iid"]
        payload = json.dumps({"characteristics": [{"aid": 1, "iid": iid, "value": True}]})
        resp = await asyncio.wait_for(pairing.connection.put("/characteristics", payload.encode()),
                                      STEP_TIMEOUT)
        check(resp.code == 204, f"PUT Identify 1.{iid}: HTTP {resp.code} {bytes(resp.body)!r}, "
                                "expected 204")
        status = await pairing.put_characteristics([(1, iid, True)])
        check(not status, f"aiohomekit put_characteristics reports {status}")
        report("write_identify", iid=iid)

    # (7) Events: subscribe to MotionDetected, trigger through the admin API.
    with at("motion_event"):
        key = (cam_aid, motion["iid"])
        events: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()

        def on_event(data: dict[tuple[int, int], dict[str, Any]]) -> None:
            if key in data and "value" in data[key]:
                events.put_nowait((time.perf_counter(), data[key]["value"]))

        unlisten = pairing.dispatcher_connect(on_event)
        status = await asyncio.wait_for(pairing.subscribe([key]), STEP_TIMEOUT)
        check(not status, f"subscribe {key}: {status}")
        flags = await read_with_flags(pairing, cam_aid, motion["iid"])
        check(flags.get("ev") is True, f"after subscribing, ev=1 read gives {flags}")
        current = (await pairing.get_characteristics([key]))[key].get("value")
        check(current in (False, 0), f"MotionDetected starts as {current!r}, expected false")
        loop = asyncio.get_running_loop()

        async def trigger(detected: bool) -> float:
            t0 = time.perf_counter()
            await loop.run_in_executor(None, api_motion, api, args.camera, detected)
            return t0

        async def next_event(what: str) -> tuple[float, Any]:
            try:
                return await asyncio.wait_for(events.get(), EVENT_TIMEOUT)
            except asyncio.TimeoutError:
                raise StepFailed(f"{what}: no EVENT for MotionDetected within {EVENT_TIMEOUT}s "
                                 "of the admin API trigger")

        # Latency: each trigger after a quiet interval longer than any coalescing window (ADK
        # batches up to 1 s, HAP §5.8), so it measures the path, not the pacing.
        latencies = []
        for i in range(args.event_rounds):
            for detected in (True, False):
                t0 = await trigger(detected)
                t_ev, value = await next_event(f"round {i}, detected={detected}")
                check(value in (detected, int(detected)),
                      f"round {i}: event value {value!r}, expected {detected}")
                latencies.append(t_ev - t0)
                read = (await pairing.get_characteristics([key]))[key].get("value")
                check(read in (detected, int(detected)),
                      f"round {i}: read {read!r} after event {detected}")
                await asyncio.sleep(QUIET)

        # A burst within one window: the first change goes out, and the last value must arrive
        # (coalesced or not); the controller must end up with the accessory's final state.
        t0 = await trigger(True)
        for detected in (False, True, False):
            await trigger(detected)
        burst = []
        while True:
            t_ev, value = await next_event("burst true,false,true,false")
            burst.append((ms(t_ev - t0), value))
            if value in (False, 0):
                break
        check(burst[0][1] in (True, 1), f"burst: first event {burst[0]!r}, expected true")
        check(len(burst) <= 4, f"burst of 4 changes gave {len(burst)} events: {burst}")
        await asyncio.sleep(QUIET)
        check(events.empty(), f"extra events after the burst settled: {burst}")

        # A repeated trigger with the same value must not produce an event (HAP §5.8).
        await trigger(False)
        await asyncio.sleep(0.3)
        if not events.empty():
            raise StepFailed(f"EVENT without a value change: {events.get_nowait()!r}")
        unlisten()
        report(
            "motion_event",
            events=len(latencies),
            trigger_to_event_median_ms=ms(statistics.median(latencies)),
            trigger_to_event_max_ms=ms(max(latencies)),
            trigger_to_event_ms=[ms(x) for x in latencies],
            burst_events_ms_value=burst,
        )

    # (8) Pairings management: one admin, us.
    with at("list_pairings"):
        pairings = await asyncio.wait_for(pairing.list_pairings(), STEP_TIMEOUT)
        check(len(pairings) == 1, f"expected one pairing, got {pairings}")
        p = pairings[0]
        check(p.get("pairingId") == ios_id, f"pairing id {p.get('pairingId')!r} != {ios_id!r}")
        check(p.get("controllerType") == "admin", f"permissions {p.get('permissions')!r}")
        check(p.get("publicKey") == pairing_data["iOSDeviceLTPK"], "stored LTPK differs")
        report("list_pairings", pairings=len(pairings), controller_type=p["controllerType"])

    # Add a regular (non-admin) controller, check what it may do, remove it (HAP §2.8).
    with at("add_remove_pairing"):
        guest_key = ed25519.Ed25519PrivateKey.generate()
        guest_pub = guest_key.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
        guest_id = str(uuid.uuid4())
        await asyncio.wait_for(pairing.add_pairing(guest_id, guest_pub.hex(), "User"),
                               STEP_TIMEOUT)
        listed = {p["pairingId"]: p for p in await pairing.list_pairings()}
        check(set(listed) == {ios_id, guest_id}, f"after AddPairing: {sorted(listed)}")
        check(listed[guest_id]["permissions"] == 0 and listed[guest_id]["publicKey"] == guest_pub.hex(),
              f"added pairing listed as {listed[guest_id]}")
        guest_data = dict(
            pairing_data,
            iOSPairingId=guest_id,
            iOSDeviceLTPK=guest_pub.hex(),
            iOSDeviceLTSK=guest_key.private_bytes(
                encoding=serialization.Encoding.Raw,
                format=serialization.PrivateFormat.Raw,
                encryption_algorithm=serialization.NoEncryption(),
            ).hex(),
        )
        guest = await verified_connection(guest_data)
        guest.closing = True  # no automatic reconnect once the accessory drops it
        resp = await asyncio.wait_for(guest.get("/accessories"), STEP_TIMEOUT)
        check(resp.code == 200, f"regular controller GET /accessories: HTTP {resp.code}")
        reply = dict(await asyncio.wait_for(guest.post_tlv(
            "/pairings", [(TLV.kTLVType_State, TLV.M1), (TLV.kTLVType_Method, TLV.ListPairings)]),
            STEP_TIMEOUT))
        check(reply.get(TLV.kTLVType_Error) == TLV.kTLVError_Authentication,
              f"regular controller listed pairings: {reply}, want kTLVError_Authentication")
        await asyncio.wait_for(pairing.remove_pairing(guest_id), STEP_TIMEOUT)
        await assert_session_closed(guest, "the removed regular controller's session")
        listed = [p["pairingId"] for p in await pairing.list_pairings()]
        check(listed == [ios_id], f"after RemovePairing: {listed}")
        report("add_remove_pairing", added_permissions=0, regular_list_refused=True,
               removed_session_closed=True)

    # (9) Unpair: remove our own pairing; the bridge becomes unpaired.
    with at("unpair"):
        # A second session of the same controller, verified before the removal: the accessory
        # must close it too (HAP §2.8; HAP-python keeps such sessions working).
        spare = await verified_connection(pairing_data)
        spare.closing = True  # no automatic reconnect once the accessory drops it
        ok = await asyncio.wait_for(pairing.remove_pairing(ios_id), STEP_TIMEOUT)
        check(ok is True, f"remove_pairing returned {ok!r}")
        await assert_session_closed(spare, "a second session of the removed admin")
        deadline = time.monotonic() + 3.0
        while True:
            st = api_status(api)
            if st.get("paired") is False:
                break
            check(time.monotonic() < deadline, f"status.paired still {st.get('paired')!r} 3 s "
                                               "after removing the only pairing")
            await asyncio.sleep(0.05)
        check(st.get("setup_code") == args.setup_code,
              f"unpaired status shows setup_code {st.get('setup_code')!r}")
        report("unpair", paired=st.get("paired"), other_session_closed=True)


class StepContext:
    """Tags an exception raised inside a step with the step's name."""

    def __init__(self, step: str) -> None:
        self.step = step

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and getattr(exc, "step", None) is None:
            try:
                exc.step = self.step
            except AttributeError:
                pass
        return False


def fail(step: str | None, e: BaseException) -> None:
    msg = f"{type(e).__name__}: {e}"
    print(json.dumps({"step": step or "?", "ok": False, "error": msg}), flush=True)
    traceback.print_exception(e, file=sys.stderr)
    sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="HAP port of the bridge")
    ap.add_argument("--api", required=True, help="admin API base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--setup-code", required=True, help="XXX-XX-XXX")
    ap.add_argument("--camera", default="demo", help="camera id for the admin API triggers")
    ap.add_argument("--verify-rounds", type=int, default=50)
    ap.add_argument("--event-rounds", type=int, default=3)
    ap.add_argument("-v", "--verbose", action="store_true", help="aiohomekit debug logs")
    args = ap.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.WARNING
    )
    started = time.perf_counter()
    asyncio.run(run(args))
    report("done", seconds=round(time.perf_counter() - started, 2))


if __name__ == "__main__":
    main()

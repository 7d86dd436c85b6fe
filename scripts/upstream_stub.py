#!/usr/bin/env python3
"""A Supabase stand-in for contract testing (scripts/schemathesis.sh): answers the PostgREST
and Auth calls supagate makes, in their wire format, from an in-memory store. Standard
library only. Not a database: filters beyond `id=eq.`/`user_id=eq.` are ignored.

Usage: python3 scripts/upstream_stub.py PORT USER_ID
"""

import base64
import json
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 54399
USER_ID = sys.argv[2] if len(sys.argv) > 2 else "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).isoformat()
CATEGORY_ID = "5d3c2b1a-0f9e-4d8c-b7a6-958473625140"
ITEM_ID = "0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b"

TABLES = {
    "categories": {CATEGORY_ID: {"id": CATEGORY_ID, "name": "Lighting", "slug": "lighting"}},
    "items": {
        ITEM_ID: {
            "id": ITEM_ID, "name": "Desk lamp", "description": None, "price": 49.9,
            "category_id": CATEGORY_ID, "user_id": USER_ID, "created_at": NOW, "updated_at": NOW,
        }
    },
    "api_keys": {},
    "profiles": {
        USER_ID: {
            "id": USER_ID, "username": "ada_l", "full_name": "Ada", "avatar_url": None,
            "created_at": NOW, "updated_at": NOW,
        }
    },
}

USER = {
    "id": USER_ID, "aud": "authenticated", "role": "authenticated", "email": "ada@example.com",
    "app_metadata": {"provider": "email"}, "user_metadata": {},
}
SESSION = {
    "access_token": "stub.access.token", "token_type": "bearer", "expires_in": 3600,
    "expires_at": 1893456000, "refresh_token": "stub-refresh", "user": USER,
}


# Idempotency keys by (bearer, key): fingerprint and the stored answer.
KEYS = {}


def eq(params, name):
    value = params.get(name, [None])[0]
    return value[3:] if value and value.startswith("eq.") else None


def shaped(table, row):
    """Adds the embedded `category` that `ITEM_COLUMNS` selects; an API key as `KEY_COLUMNS`
    selects it (never its hash)."""
    if table == "api_keys":
        return {k: row.get(k) for k in ("id", "name", "prefix", "scopes", "expires_at", "created_at")}
    if table != "items":
        return row
    category = TABLES["categories"].get(row.get("category_id") or "")
    return {**row, "category": {"id": category["id"], "name": category["name"]} if category else None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: schemathesis sends thousands of requests
        pass

    def body(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def send(self, status, payload=None, headers=None, content_type="application/json"):
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if payload is not None:
            self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def not_found_single(self):
        self.send(406, {"code": "PGRST116", "message": "JSON object requested, multiple (or no) rows returned"})

    def handle_any(self):
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        path = url.path
        if path.startswith("/auth/v1"):
            return self.auth(path[len("/auth/v1"):], params)
        if path.startswith("/rest/v1"):
            return self.rest(path[len("/rest/v1"):], params)
        if path.startswith("/storage/v1") and self.command == "POST":
            return self.storage(path[len("/storage/v1"):])
        if path.startswith("/functions/v1/") and self.command == "POST":
            return self.send(200, {"echo": self.body()})
        self.send(404, {"message": "no route"})

    def storage(self, path):
        # Storage's signing answers: a URL relative to /storage/v1 with a JWT whose `exp` is
        # read back (the signature is never checked by supagate).
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        token = ".".join([b64(b'{"alg":"HS256"}'), b64(json.dumps({"exp": int(time.time()) + 60}).encode()), "c2ln"])
        self.body()
        if path.startswith("/object/upload/sign/"):
            return self.send(200, {"url": f"{path}?token={token}", "token": token})
        if path.startswith("/object/sign/"):
            return self.send(200, {"signedURL": f"{path}?token={token}"})
        self.send(400, {"statusCode": "404", "code": "NoSuchKey", "error": "not_found", "message": "Object not found"})

    def auth(self, path, params):
        method = self.command
        body = self.body()
        if path == "/health":
            return self.send(200, {"version": "stub", "name": "GoTrue"})
        if path == "/.well-known/jwks.json":
            return self.send(200, {"keys": []})
        if path == "/signup" and method == "POST":
            return self.send(200, SESSION)
        if path == "/token" and method == "POST":
            return self.send(200, SESSION)
        if path == "/logout" and method == "POST":
            return self.send(204)
        if path == "/user" and method == "GET":
            return self.send(200, USER)
        if path == "/recover" and method == "POST":
            return self.send(200, {})
        # The sign-in flows (docs/sign-in.md): codes, links, conversion, MFA.
        if path == "/otp" and method == "POST":
            return self.send(200, {})
        if path == "/verify" and method == "POST":
            return self.send(200, SESSION)
        if path == "/user" and method == "PUT":
            return self.send(200, USER)
        if path == "/factors" and method == "POST":
            return self.send(200, {"id": str(uuid.uuid4()), "type": "totp", "friendly_name": "stub",
                                   "totp": {"qr_code": "<svg/>", "secret": "JBSWY3DPEHPK3PXP",
                                            "uri": "otpauth://totp/stub"}})
        factor = re.fullmatch(r"/factors/([0-9a-f-]{36})(/challenge|/verify)?", path)
        if factor and method == "DELETE" and not factor.group(2):
            return self.send(200, {"id": factor.group(1)})
        if factor and method == "POST" and factor.group(2) == "/challenge":
            return self.send(200, {"id": str(uuid.uuid4()), "type": "totp", "expires_at": 4102444800})
        if factor and method == "POST" and factor.group(2) == "/verify":
            return self.send(200, SESSION)
        if path == "/admin/users" and method == "POST":
            new_id = str(uuid.uuid4())
            TABLES["profiles"][new_id] = {
                "id": new_id, "username": None, "full_name": None, "avatar_url": None,
                "created_at": NOW, "updated_at": NOW,
            }
            return self.send(200, {**USER, "id": new_id, "email": (body or {}).get("email")})
        match = re.fullmatch(r"/admin/users/([0-9a-f-]{36})", path)
        if match and method == "DELETE":
            if TABLES["profiles"].pop(match.group(1), None) is None:
                return self.send(404, {"code": 404, "error_code": "user_not_found", "msg": "User not found"})
            return self.send(200, {})
        self.send(404, {"code": 404, "error_code": "not_found", "msg": "no route"})

    def keyed_write(self, path, args):
        """The keyed writes (Idempotency-Key): replay, 422 for another fingerprint, else write
        and store the answer, as supabase/migrations/20250601000701_idempotency.sql does."""
        scope = (self.headers.get("authorization"), args.get("idempotency_key"))
        prior = KEYS.get(scope)
        if prior and prior["fingerprint"] != args.get("fingerprint"):
            return self.send(422, {"code": "idempotency_key_reused", "message": "reused"})
        if prior:
            return self.send(200, {"replayed": True, "status": prior["status"], "body": prior["body"]})
        if path == "/rpc/update_item":
            row = TABLES["items"].get(args.get("item_id") or "")
            if not row:
                return self.send(404, {"code": "P0002", "message": "no item"})
            changes = args.get("changes") or {}
            if changes.get("category_id") and changes["category_id"] not in TABLES["categories"]:
                return self.send(409, {"code": "23503", "message": "foreign key violation"})
            row.update(changes)
            status, answer = 200, shaped("items", row)
        elif path == "/rpc/create_item":
            item = args.get("item") or {}
            if item.get("category_id") and item["category_id"] not in TABLES["categories"]:
                return self.send(409, {"code": "23503", "message": "foreign key violation"})
            new_id = str(uuid.uuid4())
            row = {"id": new_id, "description": None, "category_id": None, **item,
                   "created_at": NOW, "updated_at": NOW}
            TABLES["items"][new_id] = row
            status, answer = 201, shaped("items", row)
        else:
            category = args.get("category") or {}
            if any(r["slug"] == category.get("slug") for r in TABLES["categories"].values()):
                return self.send(409, {"code": "23505", "message": "duplicate key"})
            new_id = str(uuid.uuid4())
            row = {"id": new_id, **category}
            TABLES["categories"][new_id] = row
            status, answer = 201, row
        KEYS[scope] = {"fingerprint": args.get("fingerprint"), "status": status, "body": answer}
        return self.send(200, {"replayed": False, "status": status, "body": answer})

    def rest(self, path, params):
        method = self.command
        body = self.body()
        if path in ("", "/"):
            return self.send(200, {"swagger": "2.0"})
        if path == "/rpc/get_user_stats":
            owned = [i for i in TABLES["items"].values() if i["user_id"] == (body or {}).get("user_id")]
            total = round(sum(i["price"] for i in owned), 2)
            return self.send(200, {
                "item_count": len(owned), "total_value": total,
                "avg_price": round(total / len(owned), 2) if owned else None,
                "last_item_at": max((i["created_at"] for i in owned), default=None),
            })
        if path in ("/rpc/create_item", "/rpc/update_item", "/rpc/create_category"):
            return self.keyed_write(path, body or {})
        if path.startswith("/rpc/"):
            return self.send(200, True)
        if path == "/audit_log":
            return self.send(200, [])
        if path in ("/subscriptions", "/webhook_events"):
            return self.send(200, [])
        if path == "/payments":
            return self.send(201, None)
        table = path.strip("/")
        if table not in TABLES:
            return self.send(404, {"code": "42P01", "message": "relation does not exist"})
        rows = TABLES[table]
        single = "vnd.pgrst.object" in (self.headers.get("accept") or "")
        row_id = eq(params, "id")
        if method in ("GET", "HEAD") and not single:
            matching = list(rows.values())
            owner = eq(params, "user_id")
            if owner:
                matching = [r for r in matching if r.get("user_id") == owner]
            total = len(matching)
            offset = int(params.get("offset", ["0"])[0])
            limit = int(params.get("limit", ["1000"])[0])
            page = matching[offset:offset + limit]
            content_range = f"{offset}-{offset + len(page) - 1}/{total}" if page else f"*/{total}"
            if method == "HEAD":
                return self.send(200, None, {"content-range": content_range})
            return self.send(200, [shaped(table, r) for r in page], {"content-range": content_range})
        if method == "GET":
            row = rows.get(row_id or "")
            return self.send(200, shaped(table, row), content_type="application/vnd.pgrst.object+json") if row else self.not_found_single()
        if method == "POST":
            if table == "categories" and any(r["slug"] == (body or {}).get("slug") for r in rows.values()):
                return self.send(409, {"code": "23505", "message": "duplicate key"})
            if table == "items" and body and body.get("category_id") and body["category_id"] not in TABLES["categories"]:
                return self.send(409, {"code": "23503", "message": "foreign key violation"})
            new_id = str(uuid.uuid4())
            row = {"id": new_id, **(body or {})}
            if table != "categories":
                row.update({"created_at": NOW, "updated_at": NOW})
            if table == "items":
                row.setdefault("description", None)
                row.setdefault("category_id", None)
            rows[new_id] = row
            return self.send(201, shaped(table, row), content_type="application/vnd.pgrst.object+json")
        if method == "PATCH":
            row = rows.get(row_id or "")
            if not row:
                return self.not_found_single()
            if table == "items" and body and body.get("category_id") and body["category_id"] not in TABLES["categories"]:
                return self.send(409, {"code": "23503", "message": "foreign key violation"})
            row.update(body or {})
            return self.send(200, shaped(table, row), content_type="application/vnd.pgrst.object+json")
        if method == "DELETE":
            row = rows.pop(row_id or "", None)
            return self.send(200, shaped(table, row), content_type="application/vnd.pgrst.object+json") if row else self.not_found_single()
        self.send(405, {"message": "method not allowed"})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = handle_any


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()

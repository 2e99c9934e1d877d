"""The OpenAPI 3.1 description, generated from the app's router and the pydantic models the handlers
validate with: every route is described (a new route needs nothing but its handler), request bodies
and query parameters come from the models named in `parse_body`, `parse_query` and `validate` calls,
the roles from `require(...)`, the access from `@public` / `@display_feed` / `@scrape`, and every
operation answers errors as problem+json with a stable `code`. Served at /api/openapi.json, with a
small reference page of our own at /api/docs (no CDN)."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from clinicall.auth.access import access_of, public

STATIC_NAME = "{filename}"
DOCS_PAGE = Path(__file__).resolve().parent / "web" / "apidocs.html"
ERROR_STATUSES = {400: "Bad request", 401: "Login required or invalid credentials", 403: "Not allowed",
                  404: "Not found", 409: "Conflict", 410: "Gone (an expired link)", 413: "Body too large", 415: "Unsupported media type",
                  422: "Invalid input (per-field codes in errors)", 429: "Too many requests (see Retry-After)",
                  503: "A dependency is unavailable"}
MEDIA = re.compile(r"[\"'](text/(?:html|csv|plain|javascript)|audio/wav|image/svg\+xml|application/(?:pdf|zip))[\"';]")
JSON_OUT = re.compile(r"json_response\(|\b_json\(")
SUCCESS = re.compile(r"(?:status=|, )(20[0-9])\b")
QUERY_NAME = re.compile(r"query(?:\.get\(|\[)[\"'](\w+)[\"']")
GROUP = re.compile(r"\(\?P<(\w+)>")
# What the source cannot say: bodies that are not JSON, and responses that are not JSON or HTML.
OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/login"): {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["username", "password"], "properties": {
            "username": {"type": "string"}, "password": {"type": "string"}, "next": {"type": "string"}}}}}},
        "x-success": {303: None, 429: "text/html"}},
    ("POST", "/logout"): {"x-success": {303: None}},
    ("POST", "/api/imports/patients"): {"requestBody": {"required": True, "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "mapping": {"type": "string"}}}}}}},
    ("POST", "/api/referrals"): {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["full_name", "phone"], "properties": {
            "full_name": {"type": "string"}, "phone": {"type": "string"}, "service_of_interest": {"type": "string"},
            "note": {"type": "string"}, "files": {"type": "array", "items": {
                "type": "string", "contentMediaType": "application/octet-stream"}}}}}}}},
    ("POST", "/api/patients/{id}/files"): {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["group", "files"], "properties": {
            "group": {"type": "string", "enum": ["imaging", "lab"]}, "visible_to_patient": {"type": "boolean"},
            "visible_to_referrer": {"type": "boolean"}, "files": {"type": "array", "items": {
                "type": "string", "contentMediaType": "application/octet-stream"}}}}}}}},
    ("GET", "/api/files/{id}"): {"x-media": ["application/pdf", "image/jpeg", "image/png", "application/dicom"]},
    ("GET", "/metrics"): {"x-media": ["text/plain"]},
    ("GET", "/t/{token}"): {"x-success": {200: "text/html", 410: "text/html"}},
    ("GET", "/api/docs"): {"x-media": ["text/html"]},
}


def problem_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "code": {"type": "string", "description": "Stable, translated by the pages"},
        "instance": {"type": "string"}, "retry_after": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "code", "message"],
                                              "properties": {"field": {"type": "string"}, "code": {"type": "string"},
                                                             "message": {"type": "string"}}}}}}


class Components:
    """Pydantic schemas hoisted into components/schemas (their $defs too)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Problem": problem_schema()}

    def ref(self, model: type[BaseModel]) -> dict[str, Any]:
        self.add(model)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def add(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        for name, sub in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, sub)
        self.schemas.setdefault(model.__name__, schema)
        return schema


@cache
def handler_facts(handler: Any) -> dict[str, Any]:
    """What the handler's source says: models it validates with, roles it requires, query names, statuses."""
    try:
        source = textwrap.dedent(inspect.getsource(handler))
    except (OSError, TypeError):
        return {"body": None, "query": None, "roles": None, "query_names": [], "statuses": [], "media": [],
                "redirect": None, "doc": ""}
    scope = getattr(handler, "__globals__", {})
    facts: dict[str, Any] = {"body": None, "query": None, "roles": None, "doc": inspect.getdoc(handler) or ""}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "parse_body" and len(node.args) == 2:
            facts["body"] = _model(node.args[1], scope)
        elif name == "validate" and node.args and facts["body"] is None:
            facts["body"] = _model(node.args[0], scope)
        elif name == "parse_query" and len(node.args) == 2:
            facts["query"] = _model(node.args[1], scope)
        elif name == "require" and facts["roles"] is None:
            facts["roles"] = _roles(node.args[1:], scope)
    facts["query_names"] = sorted(set(QUERY_NAME.findall(source)))
    facts["statuses"] = sorted({int(code) for code in SUCCESS.findall(source)} | {200})
    facts["media"] = sorted(set(MEDIA.findall(source)) | ({"application/json"} if JSON_OUT.search(source) else set()))
    facts["redirect"] = 303 if "HTTPSeeOther" in source else 302 if "HTTPFound" in source else None
    return facts


def _model(node: ast.expr, scope: dict[str, Any]) -> type[BaseModel] | None:
    try:
        value = eval(compile(ast.Expression(node), "<openapi>", "eval"), dict(scope))  # names from the module only
    except Exception:
        return None
    return value if isinstance(value, type) and issubclass(value, BaseModel) else None


def _roles(args: list[ast.expr], scope: dict[str, Any]) -> list[str]:
    roles: list[str] = []
    for arg in args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            roles.append(arg.value)
        elif isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):
            roles.extend(str(r) for r in scope.get(arg.value.id, ()))
    return roles


def path_parameters(resource: web.AbstractResource) -> tuple[str, list[dict[str, Any]]]:
    info = resource.get_info()
    if "prefix" in info:  # a static directory
        return f"{info['prefix'].rstrip('/')}/{STATIC_NAME}", [
            {"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}]
    path = info.get("formatter") or info.get("path") or resource.canonical
    pattern = info["pattern"].pattern if "pattern" in info else ""
    params = []
    for match in GROUP.finditer(pattern):
        name, regex = match.group(1), _group_body(pattern, match.end())
        if regex == "[^{}/]+" and (name == "id" or name.endswith("_id")):
            schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
        else:
            schema = {"type": "string", "pattern": f"^(?:{regex})$"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return path, params


def _group_body(pattern: str, start: int) -> str:
    depth, i = 1, start
    while i < len(pattern) and depth:
        depth += {"(": 1, ")": -1}.get(pattern[i], 0) if pattern[i - 1] != "\\" else 0
        i += 1
    return pattern[start:i - 1]


def security_for(access: str) -> list[dict[str, list[str]]]:
    if access == "public":
        return []
    user = [{"cookieAuth": []}, {"bearerAuth": []}]
    if access == "display":
        return [*user, {"displayToken": []}]
    if access == "scrape":
        return [*user, {"metricsToken": []}]
    return user


def operation(method: str, path: str, route: web.AbstractRoute, params: list[dict[str, Any]],
              components: Components) -> dict[str, Any]:
    handler = route.handler
    access = "public" if path.startswith("/static/") else access_of(handler)
    facts = handler_facts(handler)
    override = OVERRIDES.get((method, path), {})
    room = (handler.__module__ or "clinicall").split(".")[0]
    op: dict[str, Any] = {"operationId": f"{handler.__module__}.{handler.__name__}".replace(".", "_") + f"_{method.lower()}",
                          "tags": [room], "summary": (facts["doc"].splitlines() or [handler.__name__])[0][:120],
                          "security": security_for(access), "x-access": access}
    if facts["doc"]:
        op["description"] = facts["doc"]
    if facts["roles"] is not None:
        op["x-roles"] = facts["roles"] or ["any user"]
    parameters = list(params)
    if facts["query"] is not None:
        parameters += query_parameters(facts["query"], components)
    known = {p["name"] for p in parameters}
    parameters += [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                   for n in facts["query_names"] if n not in known and not (n == "token" and access == "display")]
    if parameters:
        op["parameters"] = parameters
    if "requestBody" in override:
        op["requestBody"] = override["requestBody"]
    elif facts["body"] is not None and method in ("POST", "PUT", "PATCH", "DELETE"):
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": components.ref(facts["body"])}}}
    op["responses"] = responses(method, path, access, facts, override)
    return op


def query_parameters(model: type[BaseModel], components: Components) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, sub in schema.get("$defs", {}).items():
        components.schemas.setdefault(name, sub)
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()]


def response_media(method: str, path: str, facts: dict[str, Any], override: dict[str, Any]) -> list[str]:
    if "x-media" in override:
        return list(override["x-media"])
    if path.startswith("/static/"):
        return ["*/*"]
    if method != "GET" and "application/json" in facts["media"]:
        return ["application/json"]
    page = method == "GET" and not path.startswith(("/api/", "/ws/"))
    return facts["media"] or (["text/html"] if page else ["application/json"])


def responses(method: str, path: str, access: str, facts: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    page = method == "GET" and not path.startswith(("/api/", "/ws/"))
    media = response_media(method, path, facts, override)
    out: dict[str, Any] = {}
    success = override.get("x-success") or dict.fromkeys(facts["statuses"], "")
    if path.startswith("/ws/"):
        out["101"] = {"description": "Switching to the websocket protocol"}
        success = {}
    for status, only in success.items():
        if only is None:
            out[str(status)] = {"description": "Redirect", "headers": {"Location": {"schema": {"type": "string"}}}}
            continue
        kinds = [only] if only else media
        out[str(status)] = {"description": "Success" if status < 300 else "Refused",
                            "content": {m: {"schema": _body_schema(m)} for m in kinds}}
    if facts["redirect"] and str(facts["redirect"]) not in out:
        out[str(facts["redirect"])] = {"description": "Redirect"}
    if page and access != "public":
        out.setdefault("302", {"description": "To the login page (browsers asking for HTML)"})
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status, text in ERROR_STATUSES.items():
        out.setdefault(str(status), {"description": text, "content": dict(problem)})
    if path.startswith("/static/"):  # aiohttp's file server answers a missing file with an empty 404
        out["404"] = {"description": "No such file", "content": {**problem, "*/*": {"schema": {}}}}
    if access == "display":
        out["401"] = {"description": ERROR_STATUSES[401], "content": {**problem, "text/html": {"schema": {"type": "string"}}}}
    return out


def _body_schema(media: str) -> dict[str, Any]:
    return {"type": "object"} if media == "application/json" else {}


def documented_routes(app: web.Application) -> list[tuple[str, str, web.AbstractRoute, list[dict[str, Any]]]]:
    """(method, OpenAPI path, route, path parameters) for every route but HEAD (which mirrors GET)."""
    out = []
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        path, params = path_parameters(route.resource)
        methods = ["GET"] if route.method == "*" else [route.method]
        out.extend((method, path, route, params) for method in methods)
    return out


def build_spec(app: web.Application) -> dict[str, Any]:
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route, params in documented_routes(app):
        paths.setdefault(path, {})[method.lower()] = operation(method, path, route, params, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "clinicall", "version": "1", "description": (
            "A clinic's call centre and waiting room. Errors are application/problem+json with a stable "
            "`code`. Cookie-authenticated writes must come from clinicall's own pages (Origin, else Referer); "
            "bearer-token clients are not checked for origin. See SECURITY.md for the roles.")},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components.schemas, "securitySchemes": {
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "clinicall_session",
                           "description": "Set by POST /login or POST /api/login"},
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API token (POST /api/users/{id}/tokens)"},
            "displayToken": {"type": "apiKey", "in": "query", "name": "token",
                             "description": "A read-only display token for screens and speakers"},
            "metricsToken": {"type": "http", "scheme": "bearer", "description": "auth.metrics_token, for /metrics only"},
        }},
    }


SPEC_KEY = web.AppKey("openapi_spec", dict)  # filled on the first request, when every room has added its routes
routes = web.RouteTableDef()


def setup_openapi(app: web.Application) -> None:
    app[SPEC_KEY] = {}
    app.router.add_routes(routes)


@routes.get("/api/openapi.json")
@public
async def openapi_json(request: web.Request) -> web.Response:
    """This description (OpenAPI 3.1)."""
    spec = request.app[SPEC_KEY]
    if not spec:
        spec.update(build_spec(request.app))
    return web.json_response(spec)


@routes.get("/api/docs")
@public
async def openapi_page(request: web.Request) -> web.StreamResponse:
    """A browsable reference of the API, rendered from /api/openapi.json by the page itself."""
    return web.FileResponse(DOCS_PAGE, headers={"Cache-Control": "no-store"})

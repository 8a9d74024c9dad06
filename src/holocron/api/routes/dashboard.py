"""The dashboard page (server-rendered; a small script refreshes it from /api/status) and its login form."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from holocron.api.auth import client_of
from holocron.api.deps import State

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, state: State) -> Response:
    overview = state.paths.public(state.holocron.overview())
    return TEMPLATES.TemplateResponse(request, "dashboard.html", {"o": overview, "auth": state.auth})


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, state: State, error: str | None = None) -> Response:
    if not state.auth.required:
        return RedirectResponse("/", status_code=303)
    return TEMPLATES.TemplateResponse(request, "login.html", {"error": error})


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    if not state.auth.required:
        return RedirectResponse("/", status_code=303)
    client = client_of(request)
    wait = state.auth.limiter.retry_after(client)
    if wait is not None:
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {"error": f"too many failed sign-ins from this address: try again in {wait} s"},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    if not state.auth.token_ok(token):
        state.auth.limiter.failed(client)
        return TEMPLATES.TemplateResponse(request, "login.html", {"error": "wrong token"}, status_code=401)
    state.auth.limiter.succeeded(client)
    response = RedirectResponse("/", status_code=303)
    state.auth.set_session(response, request)
    return response

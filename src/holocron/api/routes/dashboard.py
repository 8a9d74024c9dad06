"""The dashboard page (server-rendered; a small script refreshes it from /api/status) and its login form."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from holocron.api.deps import State

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, state: State) -> Response:
    overview = state.holocron.overview()
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
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    if not state.auth.token_ok(token):
        return TEMPLATES.TemplateResponse(request, "login.html", {"error": "wrong token"}, status_code=401)
    response = RedirectResponse("/", status_code=303)
    state.auth.set_session(response, request)
    return response

"""API keys over HTTP (admins only); the CLI (`geoalloc keys ...`) does the same locally."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import Admin, Ctx
from api.problems import ProblemError, responses
from api.schemas import KeyCreated, KeyIn, KeyOut
from geoalloc.store.keys import KeyError_, add_key, key_rows, revoke

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", response_model=list[KeyOut], summary="Every API key (never a secret)", responses=responses(401, 403))
def list_keys(ctx: Ctx, who: Admin) -> list[KeyOut]:
    """Id, role, district, label, created and revoked times."""
    return [KeyOut(**r) for r in key_rows(ctx.db)]


@router.post("", response_model=KeyCreated, status_code=201, summary="Create an API key (shown once)",
             responses=responses(401, 403, 422))
def create_key(ctx: Ctx, who: Admin, body: KeyIn) -> KeyCreated:
    """The plaintext key is in this answer only; the database keeps a hash."""
    try:
        key_id, plaintext = add_key(ctx.db, body.role, body.district_zh, body.label, by=who.key_id)
    except KeyError_ as exc:
        raise ProblemError(422, str(exc)) from exc
    row = next(r for r in key_rows(ctx.db) if r["key_id"] == key_id)
    return KeyCreated(**row, key=plaintext)


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke an API key", responses=responses(401, 403, 404, 422))
def revoke_key(ctx: Ctx, who: Admin, key_id: Annotated[str, Path(min_length=1, max_length=32)]) -> KeyOut:
    """Effective on the key's next request."""
    try:
        out = KeyOut(**revoke(ctx.db, key_id, by=who.key_id))
        ctx.keys.forget(key_id)
        return out
    except KeyError_ as exc:
        raise ProblemError(404, str(exc)) from exc

"""SQL of the API key aggregate."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import InputError, NotFoundError
from app.models import ApiKey, Layer

KEYS_CHANNEL = "territory_keys"  # NOTIFY channel: payload = the changed key's prefix


def create(
    session: Session,
    *,
    prefix: str,
    secret_sha256: bytes,
    role: str,
    layers: list[str] | None,
    label: str,
) -> ApiKey:
    """Store a new key (its hash only); InputError naming a layer that does not exist."""
    if layers is not None:
        _check_layers(session, layers)
    key = ApiKey(prefix=prefix, secret_sha256=secret_sha256, role=role, layers=layers, label=label)
    session.add(key)
    session.flush()
    session.refresh(key)
    _notify(session, prefix=prefix)
    return key


def _check_layers(session: Session, layers: list[str]) -> None:
    known = set(session.scalars(select(Layer.name).where(Layer.name.in_(layers))))
    missing = [name for name in layers if name not in known]
    if missing:
        raise InputError(
            f"layer '{missing[0]}' does not exist; a key can be limited to existing layers only "
            "(GET /layers lists them)",
            field="layers",
        )


def listing(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    """Every key, oldest first; revoked ones only when asked."""
    stmt = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(stmt))


def get(session: Session, *, key_id: int) -> ApiKey:
    """The key with this id; NotFoundError if there is none."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id} does not exist; GET /keys lists them", field="id")
    return key


def revoke(session: Session, *, key_id: int) -> ApiKey:
    """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
    key = get(session, key_id=key_id)
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    session.refresh(key)
    _notify(session, prefix=key.prefix)
    return key


def revoke_label(session: Session, *, label: str) -> None:
    """Revoke every unrevoked key labelled ``label``."""
    prefixes = session.scalars(
        update(ApiKey)
        .where(ApiKey.label == label, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey.prefix)
    ).all()
    for prefix in prefixes:
        _notify(session, prefix=prefix)


def active_by_prefix(session: Session, *, prefix: str) -> ApiKey | None:
    """The unrevoked key with this prefix, if any."""
    return session.scalar(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    )


def active(session: Session) -> list[ApiKey]:
    """Every unrevoked key."""
    return list(session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))))


def drop_layer(session: Session, *, name: str) -> None:
    """Take a deleted layer out of every key's layers, so a new layer of that name is not theirs.

    A key limited to that layer alone is left limited to none: it sees no layer at all.
    """
    changed = session.scalars(
        update(ApiKey)
        .where(ApiKey.layers.contains([name]))
        .values(layers=func.array_remove(ApiKey.layers, name))
        .returning(ApiKey.prefix)
    ).all()
    for prefix in changed:
        _notify(session, prefix=prefix)


def _notify(session: Session, *, prefix: str) -> None:
    # Every worker drops its cached copy on commit (app.auth.KeyRing.forget).
    session.execute(select(func.pg_notify(KEYS_CHANNEL, prefix)))

"""Workers hear of layer changes: PostgreSQL LISTEN/NOTIFY feeding the index registry.

A change commits a NOTIFY on ``territory_changes`` with the layer's name (see
``repositories.layers.touch``). Each worker runs one listener thread on its own connection;
on a notice it brings that layer's index up to date (rebuilding only the cells the changed
territories touch, ``IndexRegistry.refresh``) and swaps it in whole, so look-ups keep being
answered from the old index until the new one is ready, and never from half of a change.

A change committed while no LISTEN is active (before the first, or while the database was
away and the listener reconnects) sends this worker no notice: each time LISTEN begins, every
layer is offered to ``on_change`` once, which brings a held index up to the stored layer (a
version check when nothing changed) and drops the index of a layer deleted meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.db import CONNECT_ARGS
from app.repositories.keys import KEYS_CHANNEL
from app.repositories.layers import CHANGES_CHANNEL

log = logging.getLogger(__name__)
RECONNECT_S = 1.0  # wait between attempts while the database is unreachable
KEYS_REREAD_S = 60.0  # every key read again this often: NOTIFY is the fast path, not the only


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (psycopg driver dropped)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ChangeListener(threading.Thread):
    """A daemon thread calling ``on_change(layer)`` for every committed layer change.

    ``on_keys(prefix)`` hears of every created or revoked API key, and ``on_keys(None)`` each
    time LISTEN begins (keys changed while nobody listened are read again).
    """

    def __init__(
        self,
        dsn: str,
        on_change: Callable[[str], None],
        *,
        on_keys: Callable[[str | None], None] | None = None,
    ) -> None:
        super().__init__(name="territory-change-listener", daemon=True)
        self._dsn = dsn
        self._on_change = on_change
        self._on_keys = on_keys
        self._known: set[str] = set()  # every layer seen or heard of, deleted ones included
        self._stopping = threading.Event()
        self.listening = threading.Event()  # set while LISTEN is active (tests wait on it)

    def stop(self) -> None:
        """Ask the thread to end; it does within about half a second."""
        self._stopping.set()

    def run(self) -> None:
        """Listen, reconnecting while the database is unreachable, until stopped."""
        while not self._stopping.is_set():
            try:
                self._listen()
            except (psycopg.OperationalError, DBAPIError, PoolTimeoutError) as exc:
                # psycopg's own (the LISTEN connection) or SQLAlchemy's (a catch-up read)
                self.listening.clear()
                log.warning("change listener lost the database (%s); retrying", exc)
                self._stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True, **CONNECT_ARGS) as conn:
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
            conn.execute(f"LISTEN {KEYS_CHANNEL}")
            self.listening.set()
            self._keys_changed(None)
            self._catch_up(conn)
            keys_read = time.monotonic()
            while not self._stopping.is_set():
                if time.monotonic() - keys_read > KEYS_REREAD_S:
                    self._keys_changed(None)  # a revocation whose NOTIFY was lost ends here
                    keys_read = time.monotonic()
                for notice in conn.notifies(timeout=0.5):
                    if notice.channel == KEYS_CHANNEL:
                        self._keys_changed(notice.payload)
                        continue
                    self._known.add(notice.payload)
                    self._deliver(notice.payload)

    def _keys_changed(self, prefix: str | None) -> None:
        # A failed read of the keys propagates: the listener reconnects (after RECONNECT_S)
        # and reads them all again, until it succeeds; meanwhile the keys held keep working.
        if self._on_keys is not None:
            self._on_keys(prefix)

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        # After LISTEN, so a change is either heard from now on or already stored here.
        rows = conn.execute("SELECT name FROM layers").fetchall()
        self._known.update(name for (name,) in rows)
        for layer in sorted(self._known):
            self._deliver(layer)

    def _deliver(self, layer: str) -> None:
        try:
            self._on_change(layer)
        except Exception:  # one bad rebuild must not stop the listener
            log.exception("updating the index of layer %r failed", layer)

"""The register's chain check on PostgreSQL (Art. 40(9)), apart from gateway.service.audit
because it works differently: the server, not this process, goes through every entry.

PostgreSQL builds each entry's canonical form, hashes it and compares each entry's sequence
and link with the one before it in the range it reads (Register.verified_rows). It returns
only the entries this process must see: the first and last of each range, those a
checkpoint or witness fixes, and those it did not find sound, each with the entry before
it. ChainWalk.run_verified moves over the rest and checks what is returned; an entry the
server found not to match, and a range it could not hash, are decided by the Python
encoding, which alone names a fault. Walking all million rows of a large register in
Python was what kept PostgreSQL below SQLite (issue 20); now the server's hashing is.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence

from gateway.core.register import GENESIS_HASH, ChainWalk, VerifiedRow
from gateway.store.store import Store

READERS = 2
"""Ranges of the register PostgreSQL checks at once, each on a connection (a server
process) of its own, while this process walks the one before."""
_NO_END = 2**62

Decide = Callable[[ChainWalk, tuple[int, str, str]], Awaitable[None]]
"""Move the walk past an entry (sequence, prev_hash, hash) the server did not vouch for, or
raise RegisterChainError: the caller's Python encoding and its checkpoints and witnesses."""


async def chain_verified(
    store: Store,
    head_seq: int,
    fixed: Collection[int],
    decide: Decide,
    progress: Callable[[int, int], None] | None,
    page: int,
) -> tuple[int, str]:
    """The last (sequence, hash) of a sound chain: ranges of `page` sequences up to the
    head, READERS at once, then `page` entries at a time beyond it until none is left
    (entries appended while it ran). Entries at `fixed` sequences always go to `decide`."""
    walk = ChainWalk()
    ordered = sorted(fixed)

    async def rows_of(after: int, upto: int) -> Sequence[VerifiedRow]:
        first = bisect.bisect_right(ordered, after)
        inside = ordered[first : bisect.bisect_right(ordered, upto, first)]
        return await store.register.verified_rows(after, upto, page, inside)

    async def walk_rows(rows: Sequence[VerifiedRow]) -> None:
        i = walk.run_verified(rows, 0, fixed)
        while i < len(rows):
            await decide(walk, rows[i][:3])
            i = walk.run_verified(rows, i + 1, fixed)
        if progress is not None:
            progress(walk.sequence, head_seq)

    ranges = deque((a, min(a + page, head_seq)) for a in range(0, head_seq, page))
    ahead: deque[asyncio.Future[Sequence[VerifiedRow]]] = deque()
    try:
        while ranges or ahead:
            while ranges and len(ahead) < READERS:
                ahead.append(asyncio.ensure_future(rows_of(*ranges.popleft())))
            await walk_rows(await ahead.popleft())
        while rows := await rows_of(walk.sequence, _NO_END):  # beyond the head
            await walk_rows(rows)
    finally:
        for pending in ahead:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
    return walk.sequence, walk.head or GENESIS_HASH

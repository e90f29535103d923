"""The Lua scripts the publisher runs, and their arguments: the atomic write (with fencing) and the lease updates.

Scripts touch only keys of one feed's hash slot, so they run on Redis Cluster too; they use no TIME and no
command outside the publisher's ACL (deploy/redis-users.acl).
"""

from __future__ import annotations

import re
from typing import Any, Final

from kiwoom_cache.document import Ranking, encode_body
from kiwoom_cache.errors import ContractError
from kiwoom_cache.keys import (
    epoch_key,
    history_key,
    latest_key,
    lease_key,
    new_epoch,
    seq_key,
    updates_channel,
)

__all__ = [
    "DEFAULT_HISTORY_MAXLEN", "FENCED", "RELEASE_LEASE_LUA", "RENEW_LEASE_LUA", "WRITE_RANKING_LUA", "fenced_holder",
    "write_ranking_args",
]

DEFAULT_HISTORY_MAXLEN: Final = 10_000

#: One ranking in one round trip (see :func:`write_ranking_args`).
#:
#: KEYS[1] history stream, KEYS[2] latest document, KEYS[3] seq counter, KEYS[4] epoch, KEYS[5] the feed's lease.
#: ARGV[1] updates channel, ARGV[2] stream MAXLEN (approximate), ARGV[3] body (the document without
#: ``id``/``seq``/``epoch``), ARGV[4] a fresh random epoch, used only if this write starts a new one, ARGV[5] the
#: writer's lease id ("" for a writer without one), ARGV[6] and ARGV[7] the epoch and ``seq`` this writer last
#: wrote for the feed ("" and 0 when it has written none). Returns ``{id, seq, epoch}``.
#:
#: Fencing: the write goes through only if ARGV[5] equals the lease's current value (absent counts as ""), so a
#: publisher whose lease expired (stalled past its TTL, SIGSTOP) or was taken over writes nothing. The refusal
#: is an error reply starting ``FENCED`` and naming the holder (see :func:`fenced_holder`); the write has no
#: effect at all, so ``seq`` stays gap-free.
#:
#: Epoch: when the stream or the epoch key is absent, the history readers knew is gone, so the script takes
#: ARGV[4] as the new epoch and restarts ``seq`` at 1. So it does when the epoch is the one this writer last wrote
#: but its ``seq`` counter is *below* what this writer last wrote: rankings it was told were written are gone
#: while the epoch key survived (a failover to a replica that lagged, a restore of an older snapshot), and
#: counting on would hand readers a ``seq`` they already saw with other content. (The candidate comes from the
#: caller so the script stays deterministic and needs no TIME: the publisher's Redis user runs only the commands
#: listed in deploy/redis-users.acl.)
#: Scripts are not rolled back on error, so XADD (the only call that can fail, e.g. WRONGTYPE) comes before
#: any other write: a refused ranking leaves no trace and ``seq`` stays gap-free. The document gets ``"id"``,
#: ``"seq"`` and ``"epoch"`` spliced in front exactly as :func:`splice_document` does, so snapshot, stream
#: entry and channel message agree.
WRITE_RANKING_LUA: Final = """
local holder = redis.call('GET', KEYS[5]) or ''
if holder ~= ARGV[5] then
  return redis.error_reply('FENCED ' .. KEYS[5] .. ' is held by "' .. holder .. '"')
end
local epoch = redis.call('GET', KEYS[4])
local seq
if epoch and redis.call('EXISTS', KEYS[1]) == 1 then
  seq = tonumber(redis.call('GET', KEYS[3]) or '0')
  if not seq then return redis.error_reply('ERR ' .. KEYS[3] .. ' does not hold an integer') end
  if epoch == ARGV[6] and seq < tonumber(ARGV[7]) then
    epoch = ARGV[4]
    seq = 0
  end
  seq = seq + 1
else
  epoch = ARGV[4]
  seq = 1
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, 'epoch', epoch, 'doc', ARGV[3])
redis.call('SET', KEYS[3], seq)
redis.call('SET', KEYS[4], epoch)
local doc = '{"id":"' .. id .. '","seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[3], 2)
redis.call('SET', KEYS[2], doc)
redis.call('PUBLISH', ARGV[1], doc)
return {id, seq, epoch}
"""

#: The error prefix of a fenced write (like Redis's own ``WRONGTYPE``/``MOVED``: the first word names the case).
FENCED: Final = "FENCED"
_FENCED_RE = re.compile(r'^FENCED \S+ is held by "(.*)"\Z', re.S)


def fenced_holder(error: str) -> str | None:
    """For a ``FENCED`` error reply: the lease's holder ("" if nobody holds it); None for any other error."""
    match = _FENCED_RE.match(error)
    return match.group(1) if match else None


def write_ranking_args(ranking: Ranking, maxlen: int = DEFAULT_HISTORY_MAXLEN,
                       lease: str = "", last: tuple[str, int] = ("", 0)) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for :data:`WRITE_RANKING_LUA`; ``lease`` is the writer's lease id ("" without a lease),
    ``last`` the (epoch, seq) this writer last wrote for the feed."""
    if maxlen < 1:
        raise ContractError(f"history maxlen must be >= 1, got {maxlen}")
    feed = ranking.feed
    keys = [history_key(feed), latest_key(feed), seq_key(feed), epoch_key(feed), lease_key(feed)]
    return keys, [updates_channel(feed), maxlen, encode_body(ranking), new_epoch(), lease, last[0], last[1]]


#: Renew a lease its holder still holds: KEYS[1] the lease, ARGV[1] the holder's id, ARGV[2] TTL in ms.
#: Returns 1 when renewed, 0 when the lease is gone or held by another (the caller lost it).
RENEW_LEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: Give a lease up, if it is still ours (graceful hand-over): KEYS[1] the lease, ARGV[1] the holder's id.
RELEASE_LEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


"""The online feature state in Redis, shared by API replicas (team mode).

Same interface and same numbers as :class:`core.online.OnlineFeatures`: Redis only counts, per row and
window, the transactions and the exact integer sum of their values; :class:`core.online.FeatureLayout`
turns those counts into features with the one arithmetic every state uses.

Keys, all under one hash tag (``{prefix}:``) so that every script touches a single slot:

- ``tx``: hash, transaction id -> ``"seconds customer terminal amount_units"`` (what :meth:`held` returns);
- ``label``: hash, transaction id -> known label, for held transactions only;
- ``time``: sorted set of held transaction ids by event time (what pruning walks);
- ``c:<customer>``: sorted set of ``"id amount_units"`` by event time (a window's sum needs no lookup);
- ``t:<terminal>``: sorted set of transaction ids by event time;
- ``f:<terminal>``: the terminal's transactions labelled fraud, by event time (fraud sums are counts);
- ``meta``: hash, ``newest`` event time seen and ``fills`` (how many times the state was filled);
- ``ready``: the marker, written last by a fill: what the state was built from. Every script refuses to
  run without it, so a Redis emptied (restarted without persistence, flushed) answers "not loaded"
  rather than scoring from an empty history;
- ``lock``: held by the one replica filling the state.

A request's insert and window queries run in one Lua script, atomically: whichever replica scores a
transaction, every transaction scored before it (by any replica) is in its windows, exactly as in one
process. Rows whose time is at or before the newest time less the horizon are pruned a few per script
call (at least twice as many as the call inserts), so the state stays bounded without a long pause.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from core.features import amount_units
from core.online import FeatureLayout, FeatureStateError, HeldRow, Row
from core.params import FeatureParams

logger = logging.getLogger(__name__)

NOT_LOADED = "NOSTATE"  # the error scripts raise when the marker is missing
FILL_CHUNK_ROWS = 20_000  # rows written per pipeline while filling (each one well under the socket timeout)
LOCK_TTL_MS = 30_000  # a filler that died frees the lock after this; a live one extends it per chunk
T = TypeVar("T")
FillOutcome = Literal["found", "filled", "busy"]  # loaded already, loaded now, another replica is loading

# Shared by the scripts: the marker check and forgetting one transaction everywhere it is indexed.
_PRELUDE = """
local P = ARGV[1]
if redis.call('EXISTS', P .. 'ready') == 0 then
  return redis.error_reply('NOSTATE the feature state is not loaded')
end
local TX, LABEL, TIME, META = P .. 'tx', P .. 'label', P .. 'time', P .. 'meta'
local function forget(tid, info)
  if info then
    local c, t, u = string.match(info, '^%S+ (%S+) (%S+) (%S+)$')
    redis.call('ZREM', P .. 'c:' .. c, tid .. ' ' .. u)
    redis.call('ZREM', P .. 't:' .. t, tid)
    redis.call('ZREM', P .. 'f:' .. t, tid)
    redis.call('HDEL', TX, tid)
    redis.call('HDEL', LABEL, tid)
  end
  redis.call('ZREM', TIME, tid)
end
"""

# ARGV: prefix, insert (1/0), customer windows, terminal windows (JSON seconds), delay, horizon, prune
# budget, then per row: id, seconds, customer, terminal, amount units. Returns per row, per window, the
# count and the exact sum (customer windows, then terminal ones), as OnlineFeatures counts them.
_SCORE = (
    _PRELUDE
    + """
local insert = ARGV[2] == '1'
local cw, tw = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local delay, horizon, budget = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local rows, newest = {}, nil
for i = 8, #ARGV, 5 do
  local tid, s, c, t = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  rows[#rows + 1] = {tonumber(s), c, t}
  if insert then
    local info = s .. ' ' .. c .. ' ' .. t .. ' ' .. ARGV[i + 4]
    local old = redis.call('HGET', TX, tid)
    if old ~= info then  -- the same transaction again changes nothing (its label stays)
      forget(tid, old)
      redis.call('HSET', TX, tid, info)
      redis.call('ZADD', TIME, s, tid)
      redis.call('ZADD', P .. 'c:' .. c, s, tid .. ' ' .. ARGV[i + 4])
      redis.call('ZADD', P .. 't:' .. t, s, tid)
    end
    if newest == nil or rows[#rows][1] > newest then newest = rows[#rows][1] end
  end
end
local widest = 0
for _, w in ipairs(cw) do if w > widest then widest = w end end
local out = {}
for _, row in ipairs(rows) do
  local s, c, t = row[1], row[2], row[3]
  local hits = redis.call('ZRANGEBYSCORE', P .. 'c:' .. c, '(' .. (s - widest), s, 'WITHSCORES')
  local times, units = {}, {}
  for k = 1, #hits, 2 do
    times[#times + 1] = tonumber(hits[k + 1])
    units[#units + 1] = tonumber(string.match(hits[k], '(%S+)$'))  -- member: "id amount_units"
  end
  for _, w in ipairs(cw) do
    local lo, n, sum = s - w, 0, 0
    for k = 1, #times do
      if times[k] > lo then n = n + 1; sum = sum + units[k] end
    end
    out[#out + 1] = n
    out[#out + 1] = sum  -- integers below 2^53: exact in Lua's doubles
  end
  local e = s - delay
  for _, w in ipairs(tw) do
    local lo = '(' .. (e - w)
    out[#out + 1] = redis.call('ZCOUNT', P .. 't:' .. t, lo, e)
    out[#out + 1] = redis.call('ZCOUNT', P .. 'f:' .. t, lo, e)
  end
end
if newest ~= nil then
  local before = tonumber(redis.call('HGET', META, 'newest'))
  if before ~= nil and before > newest then newest = before end
  redis.call('HSET', META, 'newest', newest)
  for _, tid in ipairs(redis.call('ZRANGEBYSCORE', TIME, '-inf', newest - horizon, 'LIMIT', 0, budget)) do
    forget(tid, redis.call('HGET', TX, tid))
  end
end
return out
"""
)

# ARGV: prefix, then pairs of id and label. Returns how many ids the state holds.
_LABEL = (
    _PRELUDE
    + """
local known = 0
for i = 2, #ARGV, 2 do
  local tid, value = ARGV[i], ARGV[i + 1]
  local info = redis.call('HGET', TX, tid)
  if info then
    known = known + 1
    local s, t = string.match(info, '^(%S+) %S+ (%S+) ')
    redis.call('HSET', LABEL, tid, value)
    if value == '1' then redis.call('ZADD', P .. 'f:' .. t, s, tid)
    else redis.call('ZREM', P .. 'f:' .. t, tid) end
  end
end
return known
"""
)

# ARGV: prefix, hash name (tx or label), ids. Returns the hash's values of the ids (nil when absent).
_READ = (
    _PRELUDE
    + """
local out, name = {}, P .. ARGV[2]
for first = 3, #ARGV, 2000 do
  for _, value in ipairs(redis.call('HMGET', name, unpack(ARGV, first, math.min(first + 1999, #ARGV)))) do
    out[#out + 1] = value
  end
end
return out
"""
)

# ARGV: the lock key, the holder's token, a TTL in ms (0: release). Only the holder extends or frees it.
_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


def connect_redis(url: str, timeout_s: float) -> redis.Redis:
    """A client for ``url`` that gives up after ``timeout_s`` (connecting or waiting for an answer) and
    retries a command once at once: a connection kept from before a Redis restart fails once, not twice."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
    )


def describe_redis(client: redis.Redis) -> str:
    """``host:port/db`` of ``client`` (never its password), for messages."""
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return f"Redis at {where}/{kwargs.get('db', 0)}"


class RedisFeatures(FeatureLayout):
    """The online feature state in Redis under ``prefix``; safe to share between threads and processes.

    Every method raises :class:`~core.online.FeatureStateError` when Redis cannot be reached in time or
    holds no loaded state (nothing was applied then).
    """

    remote = True

    def __init__(self, client: redis.Redis, params: FeatureParams, delay_days: int, prefix: str) -> None:
        super().__init__(params, delay_days)
        self.client = client
        self.where = describe_redis(client)
        self._p = f"{{{prefix}}}:"
        self._windows = [json.dumps(self._customer_windows), json.dumps(self._terminal_windows)]
        self._score = client.register_script(_SCORE)
        self._label = client.register_script(_LABEL)
        self._read = client.register_script(_READ)
        self._lock_script = client.register_script(_LOCK)

    def key(self, name: str) -> str:
        """The full Redis key of ``name`` (``tx``, ``c:12``, ``ready``...)."""
        return self._p + name

    def _call(self, action: Callable[[], T]) -> T:
        """``action()``, its Redis failures as :class:`FeatureStateError` saying what is wrong."""
        try:
            return action()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise FeatureStateError(f"{self.where} is unreachable ({exc})") from exc
        except ResponseError as exc:
            if str(exc).startswith(NOT_LOADED):
                raise FeatureStateError(
                    f"{self.where} holds no feature state (emptied or restarted): it is being refilled "
                    "from the validated data and the logs"
                ) from exc
            raise

    def add_transactions(self, rows: Sequence[Row]) -> np.ndarray:
        """Add ``rows`` and return their features, in one atomic script (see the module's docstring)."""
        return self._features(rows, insert=True)

    def features_of(self, rows: Sequence[Row]) -> np.ndarray:
        """The features of ``rows`` the state holds already; the state is left as it is."""
        return self._features(rows, insert=False)

    def _features(self, rows: Sequence[Row], insert: bool) -> np.ndarray:
        if not rows:
            return np.empty((0, len(self.names)), dtype=np.float32)
        units = amount_units(np.array([row[4] for row in rows])).tolist()
        args: list[Any] = [self._p, int(insert), *self._windows, self._delay_s, self._horizon_s]
        args.append(max(64, 2 * len(rows)))  # prune budget: faster than rows arrive
        for (tid, seconds, customer, terminal, _), value in zip(rows, units, strict=True):
            args += (tid, seconds, customer, terminal, value)
        flat = self._call(lambda: self._score(args=args))
        return self.features(rows, np.array(flat, dtype=np.int64).reshape(len(rows), -1))

    def held(self, ids: Iterable[str]) -> dict[str, HeldRow]:
        """What the state holds of those of ``ids`` it has."""
        wanted = list(ids)
        values = self._call(lambda: self._read(args=[self._p, "tx", *wanted])) if wanted else []
        found = {}
        for tid, value in zip(wanted, values, strict=True):
            if value is not None:
                seconds, customer, terminal, units = map(int, value.split())
                found[tid] = (seconds, customer, terminal, units)
        return found

    def labels_of(self, ids: Iterable[str]) -> dict[str, int]:
        """The known labels of those of ``ids`` the state holds."""
        wanted = list(ids)
        values = self._call(lambda: self._read(args=[self._p, "label", *wanted])) if wanted else []
        return {tid: int(v) for tid, v in zip(wanted, values, strict=True) if v is not None}

    def add_labels(self, labels: Mapping[str, int]) -> int:
        """Record fraud labels; returns how many concern transactions in the history (the others are not
        kept: they cannot change any feature)."""
        if not labels:
            return 0
        args: list[Any] = [self._p]
        for tid, value in labels.items():
            args += (tid, int(value))
        return int(self._call(lambda: self._label(args=args)))

    def unavailable_reason(self) -> str | None:
        """Why the state cannot serve now (Redis unreachable, or not loaded), or None."""
        try:
            loaded = self._call(lambda: self.client.exists(self.key("ready")))
        except FeatureStateError as exc:
            return str(exc)
        return None if loaded else f"{self.where} holds no feature state yet: it is being filled"

    @property
    def rows(self) -> int:
        """Transactions held."""
        return int(self._call(lambda: self.client.hlen(self.key("tx"))))

    @property
    def known_labels(self) -> int:
        """Labels held (only for transactions in the history)."""
        return int(self._call(lambda: self.client.hlen(self.key("label"))))

    @property
    def fills(self) -> int:
        """How many times the state was filled since Redis last held nothing under the prefix."""
        return int(self._call(lambda: self.client.hget(self.key("meta"), "fills")) or 0)

    def marker(self) -> dict[str, Any] | None:
        """What the loaded state was built from (see :meth:`fill_once`), or None when it is not loaded."""
        raw = self._call(lambda: self.client.get(self.key("ready")))
        return json.loads(raw) if raw else None

    def fill_once(
        self, build: Callable[[], tuple[pd.DataFrame, Mapping[str, int], dict[str, Any]]]
    ) -> FillOutcome:
        """Fill the state from ``build()`` (transactions, their known labels, what they come from) unless
        it is loaded already or another replica is filling it (it holds the ``lock`` key; one that dies
        frees it within :data:`LOCK_TTL_MS`)."""
        if self.marker() is not None:
            return "found"
        token = uuid.uuid4().hex
        lock = self.key("lock")
        if not self._call(lambda: self.client.set(lock, token, nx=True, px=LOCK_TTL_MS)):
            return "busy"
        try:
            if self.marker() is not None:  # the lock's previous holder finished in between
                return "found"
            transactions, labels, source = build()
            self.warm_start(transactions, labels, source, lambda: self._hold_lock(token))
            return "filled"
        finally:
            self._call(lambda: self._lock_script(keys=[lock], args=[token, 0]))

    def _hold_lock(self, token: str) -> None:
        if not self._call(lambda: self._lock_script(keys=[self.key("lock")], args=[token, LOCK_TTL_MS])):
            raise FeatureStateError(f"the fill lock in {self.where} expired: another replica took over")

    def warm_start(
        self,
        transactions: pd.DataFrame,
        labels: Mapping[str, int],
        source: Mapping[str, Any],
        between_chunks: Callable[[], None] = lambda: None,
    ) -> None:
        """Replace the state with ``transactions`` (pruned to the horizon, as
        :meth:`core.online.OnlineFeatures.warm_start` does) and their known labels; the marker, holding
        ``source``, is written last, so the state serves nothing until it is whole."""
        self._call(lambda: self.client.delete(self.key("ready")))
        self.clear(keep=("lock",))
        ordered, _ = self.warm_rows(transactions)
        frame = pd.DataFrame(ordered, columns=["tid", "seconds", "customer", "terminal", "amount"])
        frame = frame.drop_duplicates("tid", keep="last")  # an id both ingested and logged counts once
        frame["units"] = amount_units(frame["amount"].to_numpy())
        frame["label"] = frame["tid"].map(labels)
        for start in range(0, len(frame), FILL_CHUNK_ROWS):
            self._write_chunk(frame.iloc[start : start + FILL_CHUNK_ROWS])
            between_chunks()
        newest = int(frame["seconds"].max()) if len(frame) else None
        marker = {
            **source,
            "rows": len(frame),
            "labels": int(frame["label"].notna().sum()),
            "filled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        pipe = self.client.pipeline(transaction=True)
        if newest is not None:
            pipe.hset(self.key("meta"), "newest", newest)
        pipe.hincrby(self.key("meta"), "fills", 1)
        pipe.set(self.key("ready"), json.dumps(marker))
        self._call(pipe.execute)
        logger.info("feature state filled in %s: %s", self.where, marker)

    def _write_chunk(self, chunk: pd.DataFrame) -> None:
        """Index ``chunk``'s rows (and their labels) in one pipeline."""
        pipe = self.client.pipeline(transaction=False)
        ids, seconds = chunk["tid"].tolist(), chunk["seconds"].tolist()
        customers, terminals = chunk["customer"].tolist(), chunk["terminal"].tolist()
        units, labels = chunk["units"].tolist(), chunk["label"].tolist()
        series: dict[str, dict[str, int]] = {}  # key -> {member: seconds}
        known: dict[FieldT, EncodableT] = {}  # typed as hset takes it (its mapping is invariant)
        for tid, s, c, t, u, label in zip(ids, seconds, customers, terminals, units, labels, strict=True):
            series.setdefault(f"c:{c}", {})[f"{tid} {u}"] = s
            series.setdefault(f"t:{t}", {})[tid] = s
            if label == label:  # not NaN: a known label
                known[tid] = str(int(label))
                if label == 1:
                    series.setdefault(f"f:{t}", {})[tid] = s
        info = [f"{s} {c} {t} {u}" for s, c, t, u in zip(seconds, customers, terminals, units, strict=True)]
        pipe.hset(self.key("tx"), mapping=dict(zip(ids, info, strict=True)))
        pipe.zadd(self.key("time"), dict(zip(ids, seconds, strict=True)))
        for key, members in series.items():
            pipe.zadd(self.key(key), members)
        if known:
            pipe.hset(self.key("label"), mapping=known)
        self._call(pipe.execute)

    def clear(self, keep: Sequence[str] = ()) -> int:
        """Delete every key under the prefix but ``keep``; returns how many were deleted."""
        spared = {self.key(name) for name in keep}

        def sweep() -> int:
            deleted = 0
            batch: list[str] = []
            for key in self.client.scan_iter(match=self._p + "*", count=1000):
                if key not in spared:
                    batch.append(key)
                if len(batch) >= 1000:
                    deleted += int(self.client.unlink(*batch))
                    batch = []
            return deleted + (int(self.client.unlink(*batch)) if batch else 0)

        return self._call(sweep)

"""Promotion records: one per (service, target, commit), created only if absent.

The record is what makes a promotion happen at most once across processes and
restarts: it is claimed (SET NX) before anything is sent to Heroku, with a token
its claimer makes, and every later write is a compare-and-set on the record as
its writer saw it, token included. Promotions into one target are serialised:
a claim is refused while another record into that target is unsettled. A settled
record never expires: each target keeps the records of its last `keys.SETTLED_KEPT`
commits, however it moves (an operator sending it back to an older commit included).
"""

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

from pydantic import TypeAdapter

from app.core.models import PromotionRecord
from app.storage import keys
from app.storage.client import Client

_record = TypeAdapter(PromotionRecord)
# Fields older Cascades did not write: a record they left is still theirs to settle.
LEGACY_FIELDS: tuple[set[str], ...] = ({"token", "over"}, {"token", "over", "sent"})

# KEYS: the record, the service's unsettled set, the target's in-flight key. Create the
# record only if absent and no other record into the target is unsettled, and list it as
# unsettled and in flight in the same step: a crash cannot leave one unlisted.
_CLAIM = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
local busy = redis.call('get', KEYS[3])
if busy and busy ~= KEYS[1] and redis.call('sismember', KEYS[2], busy) == 1 then
  return -1
end
redis.call('set', KEYS[1], ARGV[1])
redis.call('set', KEYS[3], KEYS[1])
redis.call('sadd', KEYS[2], KEYS[1])
return 1
"""

# KEYS: the record, the unsettled set, the target's in-flight key, the target's settled
# records in order. ARGV: the new record ('' drops it); its state; how many settled records
# the target keeps; the record as the writer saw it (then the forms a record written before
# tokens existed was stored in). Of a claimer about to send and a follower taking the unsent
# claim back, exactly one wins; a writer that stalled finds another holder's record and
# changes nothing. A record leaving the unsettled state frees its target; a record that
# settles goes last in the target's order, and the oldest past the number kept are deleted
# (their keys share the service's slot).
_SWAP = """
local current, seen = redis.call('get', KEYS[1]), false
for i = 4, #ARGV do
  if current == ARGV[i] then seen = true end
end
if not seen then return 0 end
local new, state = ARGV[1], ARGV[2]
if new == '' then
  redis.call('del', KEYS[1])
  redis.call('zrem', KEYS[4], KEYS[1])
else
  redis.call('set', KEYS[1], new)
end
if new == '' or state == 'succeeded' or state == 'failed' then
  redis.call('srem', KEYS[2], KEYS[1])
  if redis.call('get', KEYS[3]) == KEYS[1] then redis.call('del', KEYS[3]) end
end
if new ~= '' and (state == 'succeeded' or state == 'failed') then
  local last = redis.call('zrange', KEYS[4], -1, -1, 'WITHSCORES')
  redis.call('zadd', KEYS[4], (tonumber(last[2]) or 0) + 1, KEYS[1])
  local over = redis.call('zcard', KEYS[4]) - tonumber(ARGV[3])
  if over > 0 then
    for _, oldest in ipairs(redis.call('zrange', KEYS[4], 0, over - 1)) do
      redis.call('del', oldest)
    end
    redis.call('zremrangebyrank', KEYS[4], 0, over - 1)
  end
end
return 1
"""

# KEYS: the record, the service's pause. ARGV: the record marked sent; Cascade's clock now
# (epoch seconds); the record as the claimer saw it (then its older stored forms). The last
# compare-and-set before the POST: only if the record is still the claimer's (0 if not),
# and the service is not paused (-1), a timed pause judged by its `until` and the `now` given
# (Redis's clock never decides). A pause whose `until` cannot be read is in force.
_SEND = """
local function epoch(stamp)
  local y, mo, d, h, mi, s, zone = string.match(
    stamp, '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d%.]+)(.*)$')
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local t = (era * 146097 + doe - 719468) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60
  t = t + tonumber(s)
  if zone == 'Z' then return t end
  local sign, oh, om = string.match(zone, '^([+-])(%d%d):?(%d%d)$')
  if not sign then return nil end
  local offset = tonumber(oh) * 3600 + tonumber(om) * 60
  if sign == '+' then return t - offset end
  return t + offset
end
local current, seen = redis.call('get', KEYS[1]), false
for i = 3, #ARGV do
  if current == ARGV[i] then seen = true end
end
if not seen then return 0 end
local paused = redis.call('get', KEYS[2])
if paused then
  local ok, pause = pcall(cjson.decode, paused)
  local ends = ok and type(pause) == 'table' and pause['until']
  local at = type(ends) == 'string' and epoch(ends) or nil
  if at == nil or tonumber(ARGV[2]) < at then return -1 end
end
redis.call('set', KEYS[1], ARGV[1])
return 1
"""


class Sent(Enum):
    SENT = 1  # marked sent: the POST may go
    LOST = 0  # the record is no longer the claimer's: nothing is sent
    PAUSED = -1  # the service is paused: the claim is left unsent, to be given back


class Ledger:
    def __init__(self, client: Client) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._swap = client.register_script(_SWAP)
        self._send = client.register_script(_SEND)

    async def claim(self, record: PromotionRecord) -> bool:
        """True for the one caller that may promote this commit to this target now.

        False when the commit has a record there, or another promotion into the target
        is not settled yet.
        """
        key = keys.promotion(record.service, record.target, record.commit)
        value = _record.dump_json(record).decode()
        return (
            int(
                await self._claim(
                    keys=[
                        key,
                        keys.promotions(record.service),
                        keys.in_flight(record.service, record.target),
                    ],
                    args=[value],
                )
            )
            == 1
        )

    async def swap(self, seen: PromotionRecord, new: PromotionRecord | None) -> bool:
        """Replace the record `seen` with `new` (None: drop it), only if it is still `seen`."""
        service, target = seen.service, seen.target
        values = [
            _record.dump_json(new).decode() if new else "",
            new.state.value if new else "",
            keys.SETTLED_KEPT,
            *_forms(seen),
        ]
        return bool(
            await self._swap(
                keys=[
                    keys.promotion(service, target, seen.commit),
                    keys.promotions(service),
                    keys.in_flight(service, target),
                    keys.settled(service, target),
                ],
                args=values,
            )
        )

    async def mark_sent(
        self, seen: PromotionRecord, sending: PromotionRecord, now: datetime
    ) -> Sent:
        """Replace the claimed, unsent record `seen` with `sending` (marked sent), only if it
        is still `seen` and no pause of the service is in force at `now` (Cascade's clock).

        The global pause lives on another cluster slot: the caller checks it just before."""
        service = seen.service
        reply = await self._send(
            keys=[keys.promotion(service, seen.target, seen.commit), keys.pause(service)],
            args=[_record.dump_json(sending).decode(), repr(now.timestamp()), *_forms(seen)],
        )
        return Sent(int(reply))

    async def drop(self, seen: PromotionRecord) -> bool:
        """Forget a record, only if it is still `seen`: the pair is judged afresh."""
        return await self.swap(seen, None)

    async def find(
        self, service: str, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], PromotionRecord]:
        """The records of the given (target, commit) pairs that exist."""
        wanted = list(pairs)
        if not wanted:
            return {}
        raw = await self.redis.mget([keys.promotion(service, t, c) for t, c in wanted])
        return {
            pair: _record.validate_json(value)
            for pair, value in zip(wanted, raw, strict=True)
            if value
        }

    async def unsettled(self, service: str) -> list[PromotionRecord]:
        """Records claimed or promoting: to be followed or resumed."""
        members = sorted(await self.redis.smembers(keys.promotions(service)))
        if not members:
            return []
        raw = await self.redis.mget(members)
        gone = [key for key, value in zip(members, raw, strict=True) if not value]
        if gone:
            await self.redis.srem(keys.promotions(service), *gone)
        return [_record.validate_json(value) for value in raw if value]


def _forms(seen: PromotionRecord) -> list[str]:
    """How `seen` may be stored: as dumped now, or, with no token, by an older Cascade."""
    forms = [_record.dump_json(seen).decode()]
    if not seen.token:
        for legacy in LEGACY_FIELDS:
            forms.append(_record.dump_json(seen, exclude=legacy).decode())
    return forms

"""The script that applies one delivery's alerts to the view, in Redis, in one step.

Senders may deliver reports of one alert out of order (Alertmanager HA pairs, retries), so
the script orders them by their own times, not by arrival: `AlertsView.record` runs it.

KEYS: the firing hash, the ended hash. ARGV: now, the ended marks' lifetime (seconds), then
per alert: "fire" or "clear", its key, its episode (epoch seconds, "" if unknown), its JSON
(`app.signals.alerts.stored.dump`: the script reads its `start`).
A fire of an episode no later than the last one ended, or older than the one firing, is
out of order (-1); so is a clear of an episode older than the one firing. Otherwise a fire
answers HSET's 1/0 and a clear HDEL's 1/0, and a clear marks its episode as ended
(`<episode>|<expires>`, both epoch seconds).
"""

FIRE, CLEAR = "fire", "clear"
OUT_OF_ORDER = -1

RECORD = """
local now, life = tonumber(ARGV[1]), tonumber(ARGV[2])
local function start_of(key)
  local kept = redis.call('HGET', KEYS[1], key)
  if not kept then return nil end
  local ok, data = pcall(cjson.decode, kept)
  if ok and type(data) == 'table' and type(data.start) == 'number' then return data.start end
  return nil
end
local function ended_at(key)
  local mark = redis.call('HGET', KEYS[2], key)
  if not mark then return nil end
  local at, expires = string.match(mark, '^([^|]+)|(.+)$')
  if at == nil or tonumber(expires) == nil or tonumber(expires) <= now then return nil end
  return tonumber(at)
end
local out = {}
for i = 3, #ARGV, 4 do
  local op, key, episode, value = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local start, result = start_of(key), -1
  if op == 'fire' then
    local ended = ended_at(key)
    local late = episode and ((ended and episode <= ended) or (start and episode < start))
    if not late then result = redis.call('HSET', KEYS[1], key, value) end
  else
    if not (episode and start and start > episode) then
      result = redis.call('HDEL', KEYS[1], key)
    end
    local ended = ended_at(key)
    if episode and (not ended or episode > ended) then
      redis.call('HSET', KEYS[2], key, string.format('%.6f|%.6f', episode, now + life))
    end
  end
  out[#out + 1] = result
end
return out
"""

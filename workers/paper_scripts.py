"""The paper venue's Lua scripts (fenced writes of orders, cancels and fills; see
:mod:`workers.paper_venue`)."""

from __future__ import annotations


# Every script checks everything before its first write and answers an error naming what it
# refused (scripts do not roll back: a trade logged whose balance counter then failed to move
# would stay logged): the type of every key written after the first write (the first write
# fails cleanly by itself; SET never fails), an order's price and size, and each int64 counter
# added to exactly (Lua numbers are doubles: the check works on 9-digit halves, each exact).
# Each script takes the parts it needs, without indentation: the body travels with every call.
def _lua(*parts: str) -> str:
    return "\n".join(line.strip() for part in parts for line in part.strip().splitlines() if line.strip())


_KEYS_GUARD = """
local function refuse(what) return redis.error_reply('ERR paper venue refused before writing: ' .. what) end
local function key_is(key, want)
  local t = redis.call('type', key).ok
  if t ~= 'none' and t ~= want then return 'key ' .. key .. ' holds a ' .. t .. ', not a ' .. want end
end
"""
_INT_GUARD = """
local MAX_HI, MAX_LO = 9223372036, 854775807
local function halves(s, name)
  if type(s) ~= 'string' or not string.match(s, '^%-?%d+$') then
    return nil, nil, name .. ' ' .. tostring(s) .. ' is not an integer'
  end
  if #s < 16 then -- below 1e15: exact as a double
    local v = tonumber(s)
    local a = math.abs(v)
    local lo = a % 1e9
    if v < 0 then return -(a - lo) / 1e9, -lo end
    return (a - lo) / 1e9, lo
  end
  local sign = 1
  if string.sub(s, 1, 1) == '-' then sign = -1; s = string.sub(s, 2) end
  s = string.match(s, '^0*(%d-)$')
  local lo = tonumber(string.sub(s, -9)) or 0
  local hi = 0
  if #s > 9 then hi = tonumber(string.sub(s, 1, #s - 9)) end
  if #s > 19 or hi > MAX_HI or (hi == MAX_HI and lo > MAX_LO + (1 - sign) / 2) then
    return nil, nil, name .. ' ' .. (sign < 0 and '-' or '') .. s .. ' is beyond int64'
  end
  return sign * hi, sign * lo
end
local function add_fits(current, delta, name)
  current = current or '0'
  local ch, cl, err = halves(current, name .. ' counter')
  if err then return err end
  local dh, dl, err2 = halves(delta, name)
  if err2 then return err2 end
  local h, l = ch + dh, cl + dl
  if l >= 1e9 then h = h + 1; l = l - 1e9 elseif l <= -1e9 then h = h - 1; l = l + 1e9 end
  if h > 0 and l < 0 then h = h - 1; l = l + 1e9 elseif h < 0 and l > 0 then h = h + 1; l = l - 1e9 end
  if h > MAX_HI or (h == MAX_HI and l > MAX_LO) or -h > MAX_HI or (-h == MAX_HI and -l > MAX_LO + 1) then
    return name .. ' ' .. current .. ' + ' .. delta .. ' overflows a 64-bit counter'
  end
end
"""
_ORDER_GUARD = """
local function order_fits(record)
  local price = string.match(record, '"price":%s*(%-?%d+)%s*[,}]')
  local qty = string.match(record, '"qty":%s*(%-?%d+)%s*[,}]')
  if not price or not qty then return 'the order has no integer price or qty' end
  for name, v in pairs({price = price, qty = qty}) do
    local _, _, err = halves(v, name)
    if err then return err end
    if string.sub(v, 1, 1) == '-' or tonumber(v) == 0 then return name .. ' ' .. v .. ' is not positive' end
  end
  if tonumber(price) * tonumber(qty) >= 9.2e18 then -- ticks x lots, counted in 64 bits by fills
    return 'notional ' .. price .. ' ticks x ' .. qty .. ' lots is beyond 9.2e18 (64-bit counters)'
  end
end
"""
_PUT_BODY = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local bad = order_fits(ARGV[3]) or (ARGV[4] ~= '' and key_is(KEYS[3], 'stream'))
if bad then return refuse('place ' .. ARGV[2] .. ': ' .. bad) end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('xadd', KEYS[3], 'MAXLEN', '~', '100000', '*', 'bot', ARGV[5], 'token', ARGV[6], 'cid', ARGV[2],
             'action', ARGV[4])
end
if ARGV[4] == 'place' then redis.call('set', KEYS[4], ARGV[2]) end
return 1
"""
_DELETE_BODY = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local bad = ARGV[3] ~= '' and key_is(KEYS[3], 'stream')
if bad then return refuse('remove ' .. ARGV[2] .. ': ' .. bad) end
redis.call('hdel', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('xadd', KEYS[3], 'MAXLEN', '~', '100000', '*', 'bot', ARGV[4], 'token', ARGV[5], 'cid', ARGV[2],
             'action', ARGV[3])
end
return 1
"""
_FILL_BODY = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local id = ARGV[7]
local bad = key_is(KEYS[3], 'list') or (ARGV[3] ~= '' and order_fits(ARGV[3]))
if not bad then
  local now = redis.pcall('hmget', KEYS[4], 'base', 'notional', 'fees')
  if now.err then
    bad = 'key ' .. KEYS[4] .. ': ' .. now.err
  else
    bad = add_fits(now[1], ARGV[5], 'base') or add_fits(now[2], ARGV[6], 'notional')
      or add_fits(now[3], ARGV[8], 'fees')
  end
end
if bad then return refuse('fill ' .. id .. ' of ' .. ARGV[2] .. ': ' .. bad) end
if ARGV[3] == '' then redis.call('hdel', KEYS[2], ARGV[2]) else redis.call('hset', KEYS[2], ARGV[2], ARGV[3]) end
redis.call('rpush', KEYS[3], ARGV[4] .. ',"id":"' .. id .. '"}')
redis.call('hincrby', KEYS[4], 'base', ARGV[5])
redis.call('hincrby', KEYS[4], 'notional', ARGV[6])
redis.call('hincrby', KEYS[4], 'fees', ARGV[8])
return id
"""
PUT = _lua(_KEYS_GUARD, _INT_GUARD, _ORDER_GUARD, _PUT_BODY)
DELETE = _lua(_KEYS_GUARD, _DELETE_BODY)
FILL = _lua(_KEYS_GUARD, _INT_GUARD, _ORDER_GUARD, _FILL_BODY)

# Several of the writes above in one script call, in order: ``ARGV[1]`` the number of ops, then
# per op its code (``p``/``d``/``f``), its key count and argument count followed by its
# arguments; its keys follow each other in KEYS. Each op runs exactly as its own script would
# (fenced, checked before writing) and the answer is the list of their answers, a refused op's
# error in its place. One command instead of a pipeline of them: the bot's loop resumes in
# fewer turns (a pipeline also releases its connection through a task), see
# ``workers.paper_store.PaperStore.execute``.
BATCH = _lua(
    _KEYS_GUARD,
    _INT_GUARD,
    _ORDER_GUARD,
    "local ops = {}",
    "ops.p = function(KEYS, ARGV)\n" + _PUT_BODY + "\nend",
    "ops.d = function(KEYS, ARGV)\n" + _DELETE_BODY + "\nend",
    "ops.f = function(KEYS, ARGV)\n" + _FILL_BODY + "\nend",
    """
local out, ki, ai = {}, 1, 2
for i = 1, tonumber(ARGV[1]) do
  local f, nk, na = ops[ARGV[ai]], tonumber(ARGV[ai + 1]), tonumber(ARGV[ai + 2])
  ai = ai + 3
  local k, a = {}, {}
  for j = 1, nk do k[j] = KEYS[ki]; ki = ki + 1 end
  for j = 1, na do a[j] = ARGV[ai]; ai = ai + 1 end
  out[i] = f(k, a)
end
return out
""",
)
CODES = {PUT: "p", DELETE: "d", FILL: "f"}

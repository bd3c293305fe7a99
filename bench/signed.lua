-- wrk script: every request a signed webhook delivery, as Heroku or GitHub sends it.
--
-- The body comes from a template written by bench/intake.py (WRK_TEMPLATE) with
-- placeholders that change per request (a delivery id, a version or commit, an app),
-- and is signed on the spot with HMAC-SHA256 through OpenSSL's libcrypto (LuaJIT FFI;
-- wrk itself links it). WRK_REPEAT=2 sends each delivery twice (the duplicates must be
-- acknowledged and have no effect). The summary goes to WRK_SUMMARY as JSON.

local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n);
]]
local ok, crypto = pcall(function() ffi.C.EVP_sha256(); return ffi.C end)
if not ok then crypto = ffi.load("libcrypto.so.3") end

local digest = ffi.new("unsigned char[32]")
local digest_len = ffi.new("unsigned int[1]")
local b64 = ffi.new("unsigned char[64]")

local function hmac(key, body)
  crypto.HMAC(crypto.EVP_sha256(), key, #key, body, #body, digest, digest_len)
end

local function base64_hmac(key, body)
  hmac(key, body)
  local n = crypto.EVP_EncodeBlock(b64, digest, 32)
  return ffi.string(b64, n)
end

local function hex_hmac(key, body)
  hmac(key, body)
  local raw = ffi.string(digest, 32)
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function read(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local kind, secret, template, apps, path, repeat_each, offset
local sent = 0

function init(args)
  kind = os.getenv("WRK_KIND")
  secret = os.getenv("WRK_SECRET")
  path = os.getenv("WRK_PATH")
  template = read(os.getenv("WRK_TEMPLATE"))
  repeat_each = tonumber(os.getenv("WRK_REPEAT") or "1")
  offset = tonumber(os.getenv("WRK_OFFSET") or "0") + thread_id * 100000000
  apps = {}
  if os.getenv("WRK_APPS") then
    for line in io.lines(os.getenv("WRK_APPS")) do
      local name, id, commit = line:match("^(%S+) (%S+) (%S+)$")
      if name then table.insert(apps, { name = name, id = id, commit = commit }) end
    end
  end
end

local function heroku(n)
  local app = apps[(n % #apps) + 1]
  local body = template
    :gsub("__DELIVERY__", string.format("bench-%d", n))
    :gsub("__VERSION__", tostring(1000000 + n))
    :gsub("__RELEASE__", string.format("00000000-0000-4000-8000-%012d", n))
    :gsub("__APP__", app.name)
    :gsub("__APPID__", app.id)
    :gsub("__COMMIT__", app.commit)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Heroku-Webhook-Hmac-SHA256"] = base64_hmac(secret, body),
  }
  return wrk.format("POST", path, headers, body)
end

local function github(n)
  local body = template:gsub("__SHA__", string.format("%040x", n))
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("bench-%d", n),
    ["X-Hub-Signature-256"] = "sha256=" .. hex_hmac(secret, body),
  }
  return wrk.format("POST", path, headers, body)
end

function request()
  local n = offset + math.floor(sent / repeat_each)
  sent = sent + 1
  if kind == "github" then return github(n) end
  return heroku(n)
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("WRK_SUMMARY"), "w"))
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  out:close()
end

-- Shared by the wrk scripts of benchmarks/serving.py: settings from BENCH_* environment variables,
-- per-thread counters (status codes, model versions, rows, timestamps) and one JSON summary line
-- ("BENCH_JSON {...}") printed by done(), which the Python harness parses.

local common = {}
local threads = {}

function common.env(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then
    if default == nil then error("wrk script: environment variable " .. name .. " is not set") end
    return default
  end
  return value
end

function common.lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  if #out == 0 then error("wrk script: " .. path .. " is empty") end
  return out
end

-- per-thread globals, read back with thread:get() in done()
rows, clamped, requests_made, last_ts = 0, 0, 0, 0
statuses, versions, first_seen = {}, {}, {}
first_error = ""

local count_versions = common.env("BENCH_COUNT_VERSIONS", "0") == "1"

local function count_response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 then
    if first_error == "" then first_error = string.sub(body or "", 1, 400) end
  elseif count_versions then
    local version = string.match(body, '"model_version":"([^"]*)"') or "?"
    local n = versions[version]
    if n == nil then
      n = 0
      first_seen[version] = os.time()
    end
    versions[version] = n + 1
  end
end

-- counting statuses costs wrk a body parse per response; BENCH_COUNT_STATUS=0 skips it
if common.env("BENCH_COUNT_STATUS", "1") == "1" then
  response = count_response
end

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local function encode(value)
  local kind = type(value)
  if kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then return "null" end
    if value == math.floor(value) and math.abs(value) < 2 ^ 53 then return string.format("%d", value) end
    return string.format("%.17g", value)
  elseif kind == "string" then
    return '"' .. string.gsub(value, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
    end) .. '"'
  elseif kind == "boolean" then
    return tostring(value)
  elseif kind == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(v)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

function done(summary, latency, requests)
  local out = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors = summary.errors,
    latency_us = {
      min = latency.min, max = latency.max, mean = latency.mean, stdev = latency.stdev,
      p50 = latency:percentile(50), p90 = latency:percentile(90),
      p99 = latency:percentile(99), p999 = latency:percentile(99.9),
    },
    threads = {},
  }
  for i, thread in ipairs(threads) do
    out.threads[i] = {
      rows = thread:get("rows"),
      clamped = thread:get("clamped"),
      requests_made = thread:get("requests_made"),
      last_ts = thread:get("last_ts"),
      statuses = thread:get("statuses"),
      versions = thread:get("versions"),
      first_seen = thread:get("first_seen"),
      first_error = thread:get("first_error"),
    }
  end
  io.write("BENCH_JSON " .. encode(out) .. "\n")
end

return common

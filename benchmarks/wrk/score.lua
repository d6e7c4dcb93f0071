-- Our API: POST /v1/score (BENCH_MODE=single), /v1/score/batch (BENCH_MODE=batch, BENCH_BATCH_ROWS
-- rows a request) or /v1/score/columns (BENCH_MODE=columns: the same rows as one list per field). Each row is a raw transaction with a unique id (run tag, wrk thread, counter), a
-- customer, terminal and amount from the simulated traffic pool (BENCH_POOL: "customer terminal
-- amount" lines) and a timestamp moving forward: BENCH_START_TS + row index x BENCH_STEP_S, the
-- threads interleaved; never past BENCH_MAX_TS (clamped rows are counted).

local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local mode = common.env("BENCH_MODE")
local batch_rows = tonumber(common.env("BENCH_BATCH_ROWS", "1000"))
local start_ts = tonumber(common.env("BENCH_START_TS"))
local step = tonumber(common.env("BENCH_STEP_S"))
local max_ts = tonumber(common.env("BENCH_MAX_TS"))
local nthreads = tonumber(common.env("BENCH_THREADS"))
local run_tag = common.env("BENCH_RUN_TAG")
local headers = { ["Content-Type"] = "application/json" }
local customers, terminals, amounts = {}, {}, {}
local counter = 0
local row_format = '{"transaction_id":%s,"tx_datetime":%s,"customer_id":%d,"terminal_id":%d,"tx_amount":%s}'

function init(args)
  for _, line in ipairs(common.lines(common.env("BENCH_POOL"))) do
    local c, t, a = string.match(line, "^(%d+) (%d+) (%S+)$")
    customers[#customers + 1] = tonumber(c)
    terminals[#terminals + 1] = tonumber(t)
    amounts[#amounts + 1] = a
  end
end

local function next_fields()
  local index = counter * nthreads + tid -- interleaved with the other threads' rows
  counter = counter + 1
  local ts = math.floor(start_ts + index * step)
  if ts > max_ts then
    ts = max_ts
    clamped = clamped + 1
  end
  last_ts = ts
  rows = rows + 1
  local i = index % #customers + 1
  return string.format('"%s-%d-%d"', run_tag, tid, counter), os.date('!"%Y-%m-%dT%H:%M:%SZ"', ts),
    customers[i], terminals[i], amounts[i]
end

local function next_row()
  local id, when, customer, terminal, amount = next_fields()
  return string.format(row_format, id, when, customer, terminal, amount)
end

local function columns_body()
  local ids, times, cs, ts, amts = {}, {}, {}, {}, {}
  for j = 1, batch_rows do
    ids[j], times[j], cs[j], ts[j], amts[j] = next_fields()
  end
  return '{"transaction_id":[' .. table.concat(ids, ",") .. '],"tx_datetime":[' .. table.concat(times, ",")
    .. '],"customer_id":[' .. table.concat(cs, ",") .. '],"terminal_id":[' .. table.concat(ts, ",")
    .. '],"tx_amount":[' .. table.concat(amts, ",") .. "]}"
end

function request()
  requests_made = requests_made + 1
  if mode == "single" then
    return wrk.format("POST", "/v1/score", headers, next_row())
  elseif mode == "columns" then
    return wrk.format("POST", "/v1/score/columns", headers, columns_body())
  end
  local parts = {}
  for j = 1, batch_rows do parts[j] = next_row() end
  return wrk.format("POST", "/v1/score/batch", headers,
    '{"transactions":[' .. table.concat(parts, ",") .. "]}")
end

-- `mlflow models serve`: POST /invocations with precomputed feature rows. BENCH_BODIES holds one
-- complete JSON body a line ({"dataframe_split": {"columns": [...], "data": [...]}}, BENCH_ROWS rows
-- each); the requests are built once in init() and cycled through.

local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local rows_per_request = tonumber(common.env("BENCH_ROWS", "1"))
local nthreads = tonumber(common.env("BENCH_THREADS"))
local headers = { ["Content-Type"] = "application/json" }
local prepared = {}
local counter = 0

function init(args)
  for _, body in ipairs(common.lines(common.env("BENCH_BODIES"))) do
    prepared[#prepared + 1] = wrk.format("POST", "/invocations", headers, body)
  end
end

function request()
  local index = counter * nthreads + tid
  counter = counter + 1
  requests_made = requests_made + 1
  rows = rows + rows_per_request
  return prepared[index % #prepared + 1]
end

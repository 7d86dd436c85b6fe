-- GET with a bearer token taken in turn from a file (one token per line), for the
-- verified-token cache scenarios: a file with one token is the cache-hit case, a file with
-- many more tokens than the cache holds is the miss case. Same per-request Lua cost on both.
--   BENCH_TOKENS_FILE  path of the token file
-- done() is request.lua's (BENCHJSON line for bench/driver.py).
dofile(os.getenv("BENCH_WRK_DIR") .. "/request.lua")

local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
  if line ~= "" then
    tokens[#tokens + 1] = "Bearer " .. line
  end
end
local n = #tokens
local i = 0
local headers = {}

-- Threads start at different offsets so two wrk threads do not send the same sequence.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  i = ((id or 1) - 1) * math.floor(n / 2)
end

function request()
  i = i % n + 1
  headers["Authorization"] = tokens[i]
  return wrk.format("GET", nil, headers)
end

-- Like request.lua, but each connection waits BENCH_DELAY_MS milliseconds after every
-- response before sending the next request. With C connections this paces the offered load
-- to about C / (delay + latency) requests per second: wrk 4 has no -R (that is wrk2, which
-- Debian does not package), so the "half of saturation" latency is measured this way.
-- The driver picks C = rate * delay and reports the rate actually achieved.
-- (A delay() function makes wrk call into Lua once per request; at half load that is cheap.)

local dir = os.getenv("BENCH_WRK_DIR") or "bench/wrk"
dofile(dir .. "/request.lua")

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "10")

function delay()
  return delay_ms
end

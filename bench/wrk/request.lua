-- One wrk script for every scenario. The request is static (no request() function, so wrk
-- formats it once and spends no Lua time per request); it is described by the environment:
--   BENCH_METHOD   GET (default) | POST | HEAD
--   BENCH_HEADERS  header lines "Name: value", separated by newlines
--   BENCH_BODY     request body (POST)
-- done() prints one line "BENCHJSON {...}" that bench/driver.py parses: request count,
-- duration, the latency percentiles (microseconds) and wrk's error counters.
-- wrk counts a response with status > 399 as a "status" error; the driver adds socket errors.

local method = os.getenv("BENCH_METHOD") or "GET"
wrk.method = method
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
end
local headers = os.getenv("BENCH_HEADERS") or ""
for line in string.gmatch(headers, "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name ~= nil then
    wrk.headers[name] = value
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"lat_mean_us":%.1f,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.status, e.timeout))
end

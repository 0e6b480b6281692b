-- wrk script of bench/audit_overhead: one request, over and over, with a bearer token.
--   BENCH_METHOD  GET or POST
--   BENCH_PATH    the path
--   BENCH_BODY    the JSON body of a POST
--   BENCH_TOKEN   bearer token
-- done() prints "BENCH_JSON {...}" with the request count, duration and non-2xx count.

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/healthz"
local body = os.getenv("BENCH_BODY")
local headers = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "") }
if method == "POST" then
  headers["Content-Type"] = "application/json"
end

local req
function init(args)
  req = wrk.format(method, path, headers, method == "POST" and body or nil)
end

function request()
  return req
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"status":%d,"other":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

-- wrk script of the submit benchmarks: POST a job, optionally with a bearer token.
--   BENCH_TOKEN   bearer token (jobline); unset for the baselines
--   BENCH_BODY    the JSON body
-- done() prints one line "BENCH_JSON {...}" that bench/common.py parses.

local token = os.getenv("BENCH_TOKEN")
local body = os.getenv("BENCH_BODY") or '{"type":"bench.noop","payload":{}}'

local headers = { ["Content-Type"] = "application/json" }
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

wrk.method = "POST"
wrk.path = "/api/v1/jobs"
wrk.body = body
wrk.headers = headers

local PERCENTILES = { 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99 }

function done(summary, latency, requests)
  local points = {}
  for _, q in ipairs(PERCENTILES) do
    points[#points + 1] = string.format("[%g,%d]", q, latency:percentile(q))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"mean_us":%.1f,"max_us":%d,"percentiles_us":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, table.concat(points, ",")))
end

-- wrk script of the submit benchmarks: POST a job, optionally with a bearer token.
--   BENCH_TOKEN   bearer token (jobline); unset for the baselines
--   BENCH_BODY    the JSON body
--   BENCH_LIMIT   jobs to submit per wrk thread, then the thread stops (0: for the duration);
--                 past the limit a connection sends cheap GET /healthz until its thread stops,
--                 so no more jobs are created than asked for
-- done() prints one line "BENCH_JSON {...}" that bench/common.py parses.

local token = os.getenv("BENCH_TOKEN")
local body = os.getenv("BENCH_BODY") or '{"type":"bench.noop","payload":{}}'
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")

local headers = { ["Content-Type"] = "application/json" }
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

local post, health
local sent, accepted = 0, 0

function init(args)
  post = wrk.format("POST", "/api/v1/jobs", headers, body)
  health = wrk.format("GET", "/healthz", {}, nil)
end

function request()
  if limit > 0 and sent >= limit then
    return health
  end
  sent = sent + 1
  return post
end

function response(status, hdrs, resp_body)
  if limit > 0 and (status == 202 or status == 200) and resp_body and resp_body:find('"id"', 1, true) then
    accepted = accepted + 1
    if accepted >= limit then
      wrk.thread:stop()
    end
  end
end

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

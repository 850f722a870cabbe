-- wrk script: POST one MCP `tools/call` of `add` (stateless JSON-RPC, no initialize) per request.
--
--   BENCH_TOKEN=<jwt> wrk -t1 -c32 -d15s --latency -s bench/wrk/tools_call.lua http://127.0.0.1:PORT/mcp
--
-- BENCH_TOKEN (optional) is sent as `Authorization: Bearer ...`. wrk counts only non-2xx/3xx
-- answers as errors, so this script counts every answer that is not HTTP 200, and every 200
-- whose body is not a successful tool result, and prints one line the harness parses:
--   RESULT {"requests": ..., "non_200": ..., "bad_body": ..., "p50_us": ..., ...}

wrk.method = "POST"
wrk.path = "/mcp"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",'
  .. '"params":{"name":"add","arguments":{"a":5,"b":3}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non_200 = 0
  bad_body = 0
  first_status = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non_200 = non_200 + 1
    if first_status == 0 then first_status = status end
  elseif not string.find(body, '"isError":false', 1, true) then
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests)
  local non, bad, first = 0, 0, 0
  for _, thread in ipairs(threads) do
    non = non + thread:get("non_200")
    bad = bad + thread:get("bad_body")
    if first == 0 then first = thread:get("first_status") end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non_200": %d, "first_non_200_status": %d, '
      .. '"bad_body": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, non, first, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end

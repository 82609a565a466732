-- wrk script: POST a Graph list of new alerts per request ({"value": [...]}: unique ids per thread,
-- request and item), bearer auth. Each alert is post_alert.lua's.
-- Arguments (after `--`): tenant, key, tag (unique per run), list size.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local path, headers, tag, size
local counter = 0
local item_format = '{"id":"%s-%d-%d","displayName":"Unusual sign-in","severity":"high","status":"active",'
  .. '"detectedDateTime":"%s","isTest":"false","customerTenantId":"c1",'
  .. '"affectedResources":[{"resourceId":"vm-1","resourceType":"virtualMachine"}]}'

function init(args)
  path = "/v1/tenants/" .. args[1] .. "/alerts"
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2] }
  tag = args[3] .. "-t" .. tostring(thread_number)
  size = tonumber(args[4])
end

function request()
  counter = counter + 1
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local items = {}
  for i = 1, size do
    items[i] = string.format(item_format, tag, counter, i, now)
  end
  return wrk.format("POST", path, headers, '{"value":[' .. table.concat(items, ",") .. ']}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

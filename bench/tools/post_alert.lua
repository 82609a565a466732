-- wrk script: POST one new alert per request (a unique id per thread and request), bearer auth.
-- Arguments (after `--`): tenant, key, tag (unique per run).
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local path, headers, tag
local counter = 0
-- Detected when sent, as a live feed's alerts are (an alert detected days before would have its reminder
-- and escalation fall due the moment it arrives).
local body_format = '{"id":"%s-%d","displayName":"Unusual sign-in","severity":"high","status":"active",'
  .. '"detectedDateTime":"%s","isTest":"false","customerTenantId":"c1",'
  .. '"affectedResources":[{"resourceId":"vm-1","resourceType":"virtualMachine"}]}'

function init(args)
  path = "/v1/tenants/" .. args[1] .. "/alerts"
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2] }
  tag = args[3] .. "-t" .. tostring(thread_number)
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, headers, string.format(body_format, tag, counter, os.date("!%Y-%m-%dT%H:%M:%SZ")))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

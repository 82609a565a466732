-- What the bench's wrk scripts share (`require "wrk_common"`; bench/tools/wrk.py puts this directory on
-- LUA_PATH): each thread's number (for ids unique across threads), a new alert's JSON, and `done`, which
-- prints the one WRK-RESULT line wrk.py reads.
local common = {}

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end

-- Detected when sent, as a live feed's alerts are (an alert detected days before would have its reminder
-- and escalation fall due the moment it arrives).
local alert_format = '{"id":"%s","displayName":"Unusual sign-in","severity":"high","status":"active",'
  .. '"detectedDateTime":"%s","isTest":"false","customerTenantId":"c1",'
  .. '"affectedResources":[{"resourceId":"vm-1","resourceType":"virtualMachine"}]}'

function common.alert(id)
  return string.format(alert_format, id, os.date("!%Y-%m-%dT%H:%M:%SZ"))
end

return common

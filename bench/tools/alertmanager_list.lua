-- wrk script: POST a list of new alerts per request to Prometheus Alertmanager (POST /api/v2/alerts, its
-- API v2: a JSON array of {labels, annotations, startsAt}); unique labels per thread, request and item, so
-- each is a new alert as post_alert_list.lua's are. The same fields as ours: name, id, severity, status,
-- customer, resource, the time it started.
-- Arguments (after `--`): tag (unique per run), list size.
require "wrk_common"

local headers = { ["Content-Type"] = "application/json" }
local tag, size
local counter = 0
local item_format = '{"labels":{"alertname":"Unusual sign-in","id":"%s-%d-%d","severity":"high","status":"active",'
  .. '"customer":"c1"},"annotations":{"resourceId":"vm-1","resourceType":"virtualMachine"},"startsAt":"%s"}'

function init(args)
  tag = args[1] .. "-t" .. tostring(thread_number)
  size = tonumber(args[2])
end

function request()
  counter = counter + 1
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local items = {}
  for i = 1, size do
    items[i] = string.format(item_format, tag, counter, i, now)
  end
  return wrk.format("POST", "/api/v2/alerts", headers, "[" .. table.concat(items, ",") .. "]")
end

-- wrk script: POST a Graph list of new alerts per request ({"value": [...]}: unique ids per thread,
-- request and item), bearer auth. Each alert is post_alert.lua's.
-- Arguments (after `--`): tenant, key, tag (unique per run), list size.
local common = require "wrk_common"

local path, headers, tag, size
local counter = 0

function init(args)
  path = "/v1/tenants/" .. args[1] .. "/alerts"
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2] }
  tag = args[3] .. "-t" .. tostring(thread_number)
  size = tonumber(args[4])
end

function request()
  counter = counter + 1
  local items = {}
  for i = 1, size do
    items[i] = common.alert(tag .. "-" .. counter .. "-" .. i)
  end
  return wrk.format("POST", path, headers, '{"value":[' .. table.concat(items, ",") .. ']}')
end

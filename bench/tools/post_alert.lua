-- wrk script: POST one new alert per request (a unique id per thread and request), bearer auth.
-- Arguments (after `--`): tenant, key, tag (unique per run).
local common = require "wrk_common"

local path, headers, tag
local counter = 0

function init(args)
  path = "/v1/tenants/" .. args[1] .. "/alerts"
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2] }
  tag = args[3] .. "-t" .. tostring(thread_number)
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, headers, common.alert(tag .. "-" .. counter))
end

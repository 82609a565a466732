-- wrk script: GET the URL given to wrk with bearer auth. Argument (after `--`): key.
require "wrk_common"

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end

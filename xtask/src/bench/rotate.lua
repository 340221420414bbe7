-- One request per line of a file, in turn (each thread starts elsewhere in it), built once in
-- init; a thread stops after `limit` requests. Arguments: method, path, file, kind, limit.
local requests, count, limit, i = {}, 0, 0, 0
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
function init(args)
  local method, path, file, kind = args[1], args[2], args[3], args[4]
  limit = tonumber(args[5])
  for line in io.lines(file) do
    -- A headers table of its own replaces wrk's (-H): start from a copy of those.
    local headers, body = {}, nil
    for name, value in pairs(wrk.headers) do headers[name] = value end
    if kind == "cookie" then headers["Cookie"] = "__Host-sid=" .. line
    elseif kind == "bearer" then headers["Authorization"] = "Bearer " .. line
    else headers["Content-Type"] = "application/x-www-form-urlencoded"; body = line end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  i = offset % #requests
end
function request()
  count = count + 1
  if count > limit then wrk.thread:stop() end
  i = i % #requests + 1
  return requests[i]
end
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.bytes, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end

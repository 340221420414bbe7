-- Appended to rotate.lua for sign-ins (POST /login): each response is counted by its status, so
-- that a sign-in made (303, to the account page) is told from one refused at once, by the
-- throttle (429) or because the hashing queue is full (503). Only these runs define `response`:
-- with it, wrk hands every response to Lua, which the session path's runs must not pay for.
signed_in, throttled, busy, other = 0, 0, 0, 0
local all_threads = {}
local setup_rotation, print_result = setup, done
function setup(thread)
  setup_rotation(thread)
  all_threads[#all_threads + 1] = thread
end
function response(status, _, _)
  if status == 303 then signed_in = signed_in + 1
  elseif status == 429 then throttled = throttled + 1
  elseif status == 503 then busy = busy + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  print_result(summary, latency, requests)
  local counts = { signed_in = 0, throttled = 0, busy = 0, other = 0 }
  for _, thread in ipairs(all_threads) do
    for name, count in pairs(counts) do counts[name] = count + thread:get(name) end
  end
  io.write(string.format("SIGN-INS %d %d %d %d\n", counts.signed_in, counts.throttled,
    counts.busy, counts.other))
end

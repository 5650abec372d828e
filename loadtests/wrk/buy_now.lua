-- wrk: Buy Now where every request is a new order, as in a real sale: requests take
-- turns over the shoppers' tokens, and every request carries an Idempotency-Key no other
-- request of the run uses (thread number and a per-thread counter).
--
--   wrk -t2 -c64 -d20s -s loadtests/wrk/buy_now.lua http://127.0.0.1:8080 -- <plan file>
--
-- The plan file comes from `flashcart-wrk prepare`. With `spread <id>` lines (prepare
-- --spread N), requests take turns over those products instead of the hot one. At the end, one JSON line with the
-- figures (`done` below). wrk runs one Lua state per thread: `thread_number` is set in
-- each thread's state by `setup`, so it must stay a global here (a `local` of that name
-- would shadow it and give every thread the same keys).

threads_started = 0

function setup(thread)
   threads_started = threads_started + 1
   thread:set("thread_number", threads_started)
end

function init(args)
   tokens = {}
   spread = {}
   for line in io.lines(args[1]) do
      local product_id = line:match("^product (%d+)$")
      local spread_id = line:match("^spread (%d+)$")
      local run_id = line:match("^run (%S+)$")
      if product_id then
         body = '{"productId":' .. product_id .. ',"quantity":1}'
      elseif spread_id then
         spread[#spread + 1] = '{"productId":' .. spread_id .. ',"quantity":1}'
      elseif run_id then
         run = run_id
      else
         tokens[#tokens + 1] = "Bearer " .. line
      end
   end
   sent = 0
end

function request()
   sent = sent + 1
   local token = tokens[((sent * 2 + thread_number) % #tokens) + 1]
   local headers = {
      ["Authorization"] = token,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = run .. "-" .. thread_number .. "-" .. sent,
   }
   local this_body = body
   if #spread > 0 then
      this_body = spread[((sent * 7 + thread_number) % #spread) + 1]
   end
   return wrk.format("POST", "/api/v1/buy-now", headers, this_body)
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
      summary.requests, summary.duration, errors.status,
      errors.connect + errors.read + errors.write + errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end

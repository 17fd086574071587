-- wrk script: POST /api/v1/commands with a unique command id per request.
--
--   wrk -t1 -c64 -d5s --latency -s bench/wrk_commands.lua http://127.0.0.1:8080/api/v1/commands -- [SKUS] [TAG]
--
-- Every fourth request restocks one of SKUS SKUs (default 1000) by 10; the others place an
-- order of one or two lines over those SKUs, so the saga reserves and confirms most orders
-- (about 6.75 units ordered per 10 restocked). Command and order ids are TAG-THREAD-N, so
-- threads never collide and a run with a new TAG never repeats an earlier run's ids (a repeat
-- would be a cheap duplicate, not a command). `orderflow bench --http` runs this script; its
-- done() prints one machine-readable line for it.
--
-- No response() function: with one, wrk parses every response body, which costs the load
-- generator CPU that the server under test then does not get.

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local skus, tag, n = 1000, "w", 0

function init(args)
  skus = tonumber(args[1]) or skus
  tag = (args[2] or tag) .. "-" .. tostring(thread_index or 0)
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  n = n + 1
  local id = tag .. "-" .. n
  local body
  if n % 4 == 1 then
    body = string.format('{"commandId":"%s","addStock":{"sku":"SKU-%d","quantity":10}}', id,
                         math.floor(n / 4) % skus)
  else
    local a, b = (n * 7919) % skus, (n * 104729 + 13) % skus
    local lines = string.format('{"sku":"SKU-%d","quantity":%d,"unitPriceCents":1999}', a, 1 + n % 2)
    if n % 3 == 0 and b ~= a then
      lines = lines .. string.format(',{"sku":"SKU-%d","quantity":1,"unitPriceCents":2999}', b)
    end
    body = string.format('{"commandId":"%s","placeOrder":{"orderId":"%s","customerId":"c-%d","lines":[%s]}}', id, id,
                         n % 5000, lines)
  end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "orderflow-wrk requests=%.0f duration_us=%.0f status_errors=%.0f connect_errors=%.0f read_errors=%.0f " ..
    "write_errors=%.0f timeouts=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

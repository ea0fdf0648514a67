-- wrk script for the admission benchmarks: POST one AdmissionReview body over keep-alive connections and print
-- the run's numbers as one JSON line (prefixed "BENCH-JSON ") for bench/admission.py.
-- Usage: wrk -t1 -c16 -d10s --latency -s bench/wrk/admission.lua https://127.0.0.1:PORT/mutate -- BODY_FILE

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s admission.lua URL -- BODY_FILE")
   end
   local file = assert(io.open(path, "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json"
end

-- No response() hook: it would run Lua for every response; wrk already counts statuses >= 400 in errors.status.

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end

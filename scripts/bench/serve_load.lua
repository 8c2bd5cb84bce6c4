-- wrk script of scripts/bench/serve_load.sh: every request is a random line of the file
-- named by the environment variable SERVE_LOAD_TARGETS, "PATH" or "PATH<TAB>RANGE"
-- (RANGE the value of a Range header, e.g. bytes=1000-1999). At the end one JSON line
-- with the counts and latency percentiles (microseconds) goes to stdout, after "JSON ".

local targets = {}
local threads = 0

-- runs in the main state, once per thread before it starts: a number for each
function setup(thread)
    threads = threads + 1
    thread:set("id", threads)
end

function init(args)
    local f = assert(io.open(os.getenv("SERVE_LOAD_TARGETS"), "r"))
    for line in f:lines() do
        local path, range = line:match("^([^\t]+)\t(.+)$")
        if path then
            targets[#targets + 1] = wrk.format("GET", path, { Range = range })
        elseif #line > 0 then
            targets[#targets + 1] = wrk.format("GET", line)
        end
    end
    f:close()
    -- each thread its own sequence; fixed seeds, so every run draws the same requests
    math.randomseed(tonumber(os.getenv("SERVE_LOAD_SEED") or "1") * 1000 + (id or 0))
end

function request()
    return targets[math.random(#targets)]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
            .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
            .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean))
end

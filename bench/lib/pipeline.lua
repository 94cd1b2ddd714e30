-- wrk script for bench/http.sh: HTTP/1.1 pipelining.
-- Usage: wrk -t1 -c100 -s pipeline.lua URL -- DEPTH   (DEPTH defaults to 16)
-- init builds DEPTH copies of the request for the URL's path in one string;
-- wrk sends that string as one write and counts every response it parses
-- (it works out the depth by parsing the string, see script_verify_request),
-- so "requests" and "Requests/sec" count responses, not batches.
local depth = 16

init = function(args)
    if args[1] then
        depth = tonumber(args[1])
    end
    local r = {}
    for i = 1, depth do
        r[i] = wrk.format(nil)
    end
    req = table.concat(r)
end

request = function()
    return req
end

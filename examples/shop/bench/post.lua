-- wrk: POST with an empty body, as load.sh's add scenario.
wrk.method = "POST"
wrk.headers["Content-Length"] = "0"

#!/usr/bin/env python3
"""Load test for `t6 serve` (Python standard library only, loopback only).

N client threads send POST /v1/completions back to back for a fixed time (and at most
--max-requests in all), then print: requests ok / failed, latency p50/p90/p99, and aggregate
completion tokens per second.

    t6 serve --model model.safetensors --port 8080 &
    python3 tools/loadtest.py --port 8080 --clients 32 --duration 60
"""
import argparse
import http.client
import ipaddress
import json
import socket
import sys
import threading
import time


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def is_loopback(host):
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="server address (loopback only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds to send requests")
    ap.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt", default="The quick brown fox")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--stream", action="store_true", help="request server-sent events")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    ap.add_argument("--slow-headers", type=int, default=0, metavar="N",
                    help="also hold N connections that send one header line every 3 s, and "
                         "time GET /health every 0.5 s meanwhile (health_max_s)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    a = ap.parse_args()
    if not is_loopback(a.host):
        sys.exit("loadtest: only loopback addresses (127.0.0.0/8, ::1) may be targeted")

    headers = {"Content-Type": "application/json"}
    if a.api_key:
        headers["Authorization"] = "Bearer " + a.api_key
    lock = threading.Lock()
    latencies, failures, tokens = [], [], [0]
    sent = [0]
    deadline = time.monotonic() + a.duration

    def client(idx):
        conn = None
        seq = 0
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= a.max_requests:
                    return
                sent[0] += 1
            body = json.dumps({"prompt": f"{a.prompt} #{idx}.{seq}", "max_tokens": a.max_tokens,
                               "temperature": a.temperature, "seed": idx * 100003 + seq,
                               "stream": a.stream})
            seq += 1
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout)
                conn.request("POST", "/v1/completions", body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
                if a.stream:
                    events = [l[6:] for l in data.decode().split("\n") if l.startswith("data: ")]
                    if not events or events[-1] != "[DONE]":
                        raise RuntimeError("stream did not end with [DONE]")
                    n = json.loads(events[-2])["usage"]["completion_tokens"]
                else:
                    n = json.loads(data)["usage"]["completion_tokens"]
                dt = time.monotonic() - t0
                with lock:
                    latencies.append(dt)
                    tokens[0] += n
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                with lock:
                    failures.append(str(e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    # Slow-header clients (a "slowloris"): each sends a header line every 3 s, reconnecting when
    # the server cuts it off; meanwhile /health is timed on fresh connections.
    health = []
    stop_slow = threading.Event()

    def slow_client():
        while not stop_slow.is_set():
            try:
                s = socket.create_connection((a.host, a.port), timeout=10)
                s.sendall(b"GET /health HTTP/1.1\r\n")
                while not stop_slow.wait(3.0):
                    s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass  # cut off by the server: come back
            finally:
                try:
                    s.close()
                except Exception:  # noqa: BLE001
                    pass

    def health_probe():
        while not stop_slow.wait(0.5):
            t0 = time.monotonic()
            try:
                c = http.client.HTTPConnection(a.host, a.port, timeout=30)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                ok = False
            with lock:
                health.append(time.monotonic() - t0 if ok else float("inf"))

    side = [threading.Thread(target=slow_client, daemon=True) for _ in range(a.slow_headers)]
    if a.slow_headers:
        side.append(threading.Thread(target=health_probe, daemon=True))
    for t in side:
        t.start()

    t_start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.duration + a.timeout + 10)
    elapsed = time.monotonic() - t_start
    stop_slow.set()
    lat = sorted(latencies)
    summary = {
        "clients": a.clients, "seconds": round(elapsed, 2), "ok": len(lat),
        "failed": len(failures), "max_tokens": a.max_tokens, "stream": a.stream,
        "latency_p50_s": round(percentile(lat, 0.50), 4),
        "latency_p90_s": round(percentile(lat, 0.90), 4),
        "latency_p99_s": round(percentile(lat, 0.99), 4),
        "requests_per_s": round(len(lat) / elapsed, 2),
        "tokens_per_s": round(tokens[0] / elapsed, 1),
    }
    if a.slow_headers:
        summary["slow_header_connections"] = a.slow_headers
        summary["health_checks"] = len(health)
        summary["health_max_s"] = round(max(health), 4) if health else None
    if a.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>16}: {v}")
        for f in failures[:5]:
            print("  failure:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Service benchmark on loopback: relocations, a bulk relocation, a hostile body, a plan through the API.

    .venv/bin/python -m benchmarks.api [--relocations 2000] [--rate 100] [--clients 20] [--bulk 1000] [--json]

Starts ``uvicorn --factory api.app:create_app`` in its own process on 127.0.0.1 with a fresh
SQLite file, creates an admin key, then measures, end to end over HTTP:

1. importing the bundled 7,000-member sample (``POST /members/import``: validation + offline geocoding);
2. forming a plan for it (``POST /plans`` -> 202, polling ``GET /jobs/{id}`` until the plan is saved);
3. single relocations (``POST /members/{id}/relocate`` with a point) offered at a fixed rate from
   N clients (open loop: latency counts from the scheduled send), then back to back (saturation);
   each moves a random active member next to another random member's home;
4. ``POST /relocations`` with ``--bulk`` items, and whether every branch is within its limits after;
5. a keyless 200 MB body to ``/members/{id}/relocate``: time to the refusal and the server's
   memory growth (resident set, before and after).

Targets (issue 19): relocations at 100/s offered from 20 clients p99 < 50 ms; 1,000 bulk
relocations answered in < 2 s with limits held; the 200 MB body refused (413 or 401) in < 0.5 s
with < 20 MB memory growth. On a machine with two or more cores the server is pinned to one core
and the load generator to another (``taskset`` / ``sched_setaffinity``), so the generator does
not share the server's core; other processes still may (the report says how busy the machine was).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from geoalloc.paths import sample_roster_path
from geoalloc.store.keys import create_key


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), to report cost per request
    independently of what else the shared machine is running."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (Linux /proc/stat, all cores, including
    time the hypervisor took: steal), to show how much else ran during a measurement."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def writer_stats(base: str) -> dict[str, float]:
    """Batch count, relocations and seconds so far, from the server's Prometheus metrics."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    out = {"count": 0.0, "size": 0.0, "seconds": 0.0}
    for line in text.splitlines():
        if line.startswith("geoalloc_relocation_batch_size_count"):
            out["count"] = float(line.split()[-1])
        elif line.startswith("geoalloc_relocation_batch_size_sum"):
            out["size"] = float(line.split()[-1])
        elif line.startswith("geoalloc_relocation_batch_seconds_sum"):
            out["seconds"] = float(line.split()[-1])
    return out


#: (server cores, load generator cores) when the machine has two or more; None otherwise.
PINNING = ({0}, {1}) if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else None


def rss_mb(pid: int) -> float:
    """A process's resident set (Linux /proc), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """uvicorn in a child process (its own GIL), logging warnings only, pinned to its own core."""
    env = os.environ | {"GEOALLOC_DATABASE_URL": db_url}
    pin = ["taskset", "-c", ",".join(map(str, sorted(PINNING[0])))] if PINNING else []
    proc = subprocess.Popen(
        [*pin, sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1", "--port", str(port),
         "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not start in 60 s")


def import_and_plan(base: str, headers: dict[str, str], roster: Path, plan_time_limit: float) -> dict[str, Any]:
    """Import the roster, then form a plan through the API; seconds for each step."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as c:
        t0 = time.perf_counter()
        r = c.post("/members/import", files={"file": (roster.name, roster.read_bytes(), "text/csv")})
        r.raise_for_status()
        rep = r.json()
        out["import_s"] = time.perf_counter() - t0
        out["imported"] = rep["created"]
        out["rejected"] = len(rep["rejects"])
        t0 = time.perf_counter()
        r = c.post("/plans", json={"time_limit": plan_time_limit})
        r.raise_for_status()
        job_id = r.json()["job_id"]
        while True:
            job = c.get(f"/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        out["plan_s"] = time.perf_counter() - t0
        if job["status"] != "succeeded":
            raise RuntimeError(f"plan job failed: {job['error']}")
        out["plan_id"] = job["plan_id"]
        plan = c.get(f"/plans/{job['plan_id']}").json()
        report = c.get(f"/plans/{job['plan_id']}/report").json()
        out["n_branches"] = plan["n_branches"]
        out["n_assigned"] = plan["n_assigned"]
        out["gap"] = report.get("gap")
        members = []
        offset = 0
        while True:
            page = c.get("/members", params={"limit": 1000, "offset": offset, "status": "active"}).json()
            members += [(m["member_id"], m["lon"], m["lat"]) for m in page["items"] if m["lon"] is not None]
            offset += 1000
            if offset >= page["total"]:
                break
        out["members"] = members
    return out


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, sending pre-encoded requests.

    httpx's async pool costs more CPU per request than the server does here (on two shared cores
    it caps a trivial endpoint near 100 requests/s); the load generator must not be the bottleneck.
    Requests are encoded before the clock starts and answers are parsed after it stops, so the
    generator's own work per request is a write and a read.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def encode(self, path: str, body: dict[str, Any]) -> bytes:
        """The bytes of one JSON POST on this connection."""
        data = json.dumps(body).encode()
        return (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n{self.extra}\r\n").encode() + data

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one encoded request; (status, raw body) of its answer."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        k = head.lower().index(b"content-length:") + 15
        length = int(head[k:head.index(b"\r\n", k)])
        return status, await self.reader.readexactly(length)

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, payload = await self.send(self.encode(path, body))
        return status, json.loads(payload)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _jobs(members: list[tuple[str, float, float]], n: int, seed: int) -> list[tuple[str, dict[str, float]]]:
    """n relocations: a random active member moves next to another random member's home."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, len(members), size=n)
    where = rng.integers(0, len(members), size=n)
    jitter = rng.normal(0, 0.002, size=(n, 2))
    return [(f"/members/{members[w][0]}/relocate",
             {"lon": round(members[t][1] + float(dx), 6), "lat": round(members[t][2] + float(dy), 6)})
            for w, t, (dx, dy) in zip(who, where, jitter)]


async def relocate_load(port: int, headers: dict[str, str], members: list[tuple[str, float, float]], n: int,
                        clients: int, rate: float | None, seed: int = 7) -> dict[str, Any]:
    """n relocations from ``clients`` concurrent connections.

    ``rate`` (requests/s over all clients) paces an open loop: client k sends its i-th request at
    ``(i * clients + k) / rate`` seconds, or as soon as its previous answer is in if later, and
    latency counts from the scheduled time (so queueing is not hidden). ``rate=None`` is a closed
    loop: every client sends back to back, which measures saturation throughput.
    """
    jobs = _jobs(members, n, seed)
    conns = [Connection("127.0.0.1", port, headers) for _ in range(clients)]
    await conns[0].post_json(*jobs[0])  # warm-up: loads the plan into the server's cache
    encoded = [[conns[k].encode(*job) for job in jobs[k::clients]] for k in range(clients)]
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []
    gc.collect()
    gc.freeze()  # the generator's own collector passes are not the server's latency

    async def client(k: int, t0: float) -> None:
        conn, clock = conns[k], time.perf_counter
        for i, request in enumerate(encoded[k]):
            due = t0 + (i * clients + k) / rate if rate else clock()
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            answers.append(await conn.send(request))
            latencies.append(clock() - (due if due > t0 else t0))

    t0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(k, t0) for k in range(clients)))
    wall, client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    gc.unfreeze()
    for c in conns:
        c.close()
    codes: dict[int, int] = {}
    actions: dict[str, int] = {}
    for status, payload in answers:
        codes[status] = codes.get(status, 0) + 1
        if status == 200:
            action = json.loads(payload)["action"]
            actions[action] = actions.get(action, 0) + 1
    lat = np.array(latencies) * 1000
    return {"mode": f"open loop at {rate:.0f}/s" if rate else "closed loop", "relocations": n, "clients": clients,
            "seconds": wall, "per_second": n / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)), "p99_ms": float(np.percentile(lat, 99)),
            "max_ms": float(lat.max()), "status": codes, "actions": actions,
            "client_cpu_ms": client_cpu / n * 1000, "rate": rate}


def run_load(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`relocate_load` on uvloop (the server's loop too): the generator's CPU per request
    is then a fraction of the server's, so the two sharing two cores measures the server."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(relocate_load(*args, **kwargs))


def bulk(base: str, headers: dict[str, str], members: list[tuple[str, float, float]], n: int, plan_id: int,
         seed: int = 9) -> dict[str, Any]:
    """``POST /relocations`` with n point items; seconds to the answer and whether limits held after."""
    jobs = _jobs(members, n, seed)
    items = [{"member_id": path.split("/")[2]} | body for path, body in jobs]
    with httpx.Client(base_url=base, headers=headers, timeout=600) as c:
        t0 = time.perf_counter()
        r = c.post("/relocations", json={"items": items})
        seconds = time.perf_counter() - t0
        r.raise_for_status()
        out = r.json()
        plan = c.get(f"/plans/{plan_id}").json()
        branches = c.get(f"/plans/{plan_id}/branches").json()
    lo, hi = plan["policy"]["min_size"], plan["policy"]["max_size"]
    outside = [b["branch_id"] for b in branches if b["size"] and not lo <= b["size"] <= hi]
    return {"items": n, "seconds": seconds, "applied": out["applied"], "refused": out["refused"],
            "branches": len(branches), "outside_limits": len(outside), "limits": [lo, hi]}


def hostile_body(port: int, pid: int, path: str, megabytes: int = 200) -> dict[str, Any]:
    """A keyless ``megabytes`` MB JSON body, sent as fast as the socket takes it: seconds until the
    server answers, its status, and the server's resident memory before and after."""
    rss0 = rss_mb(pid)
    chunk = b"[" + b"1," * (2**19 - 1) + b"1"  # ~1 MB of valid-looking JSON, sent again and again
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {megabytes * len(chunk)}\r\n\r\n").encode()
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        t0 = time.perf_counter()
        pending = b""
        while b"\r\n" not in answer and time.perf_counter() - t0 < 30:
            try:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
                continue
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            if not pending and sent < megabytes:
                pending, sent = chunk, sent + 1
            if pending:
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    time.sleep(0.0005)
                except (BrokenPipeError, ConnectionResetError):
                    break
            else:
                time.sleep(0.0005)
        seconds = time.perf_counter() - t0
    status = int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0
    time.sleep(0.5)
    rss1 = rss_mb(pid)
    return {"megabytes": megabytes, "seconds": seconds, "status": status, "sent_mb": sent,
            "rss_before_mb": rss0, "rss_after_mb": rss1, "growth_mb": rss1 - rss0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--relocations", type=int, default=2000, help="relocations per run (two runs)")
    ap.add_argument("--rate", type=float, default=100.0, help="offered load of the open-loop run (requests/s)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--bulk", type=int, default=1000, help="items of the POST /relocations call")
    ap.add_argument("--time-limit", type=float, default=5.0, help="the plan's solver time limit (policy.time_limit)")
    ap.add_argument("--members", type=Path, default=sample_roster_path())
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if PINNING:
        os.sched_setaffinity(0, PINNING[1])

    with tempfile.TemporaryDirectory(prefix="geoalloc-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        from geoalloc.store.db import init_db

        init_db(url)
        _, key = create_key(url, "admin")
        headers = {"Authorization": f"Bearer {key}"}
        port = _free_port()
        proc = start_server(url, port)
        base = f"http://127.0.0.1:{port}"
        try:
            plan = import_and_plan(base, headers, args.members, args.time_limit)
            members = plan.pop("members")
            c0, m0, w0 = cpu_seconds(proc.pid), machine_busy_seconds(), writer_stats(base)
            paced = run_load(port, headers, members, args.relocations, args.clients, args.rate)
            c1, m1, w1 = cpu_seconds(proc.pid), machine_busy_seconds(), writer_stats(base)
            flat_out = run_load(port, headers, members, args.relocations, args.clients, None, seed=8)
            c2, m2 = cpu_seconds(proc.pid), machine_busy_seconds()
            w2 = writer_stats(base)
            paced["server_cpu_ms"] = (c1 - c0) / args.relocations * 1000
            flat_out["server_cpu_ms"] = (c2 - c1) / args.relocations * 1000
            for r, (ma, mb), (ca, cb), (wa, wb) in ((paced, (m0, m1), (c0, c1), (w0, w1)),
                                                    (flat_out, (m1, m2), (c1, c2), (w1, w2))):
                # what else the machine ran meanwhile, in cores (the load generator's own CPU excluded)
                r["other_cores"] = max(0.0, (mb - ma) - (cb - ca) - r["client_cpu_ms"] * r["relocations"] / 1000) / r["seconds"]
                n_b = wb["count"] - wa["count"]
                r["batches"] = n_b
                r["mean_batch"] = (wb["size"] - wa["size"]) / max(n_b, 1)
                r["writer_ms_per_relocation"] = (wb["seconds"] - wa["seconds"]) / max(wb["size"] - wa["size"], 1) * 1000
            many = bulk(base, headers, members, args.bulk, plan["plan_id"])
            hostile = hostile_body(port, proc.pid, f"/members/{members[0][0]}/relocate")
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    result = {"plan": plan, "relocation": paced, "saturation": flat_out, "bulk": many, "hostile_body": hostile,
              "pinned": bool(PINNING)}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    where = ("server pinned to core 0, load generator to core 1" if PINNING
             else "server and load generator share the cores")
    print(f"geoalloc service benchmark (loopback uvicorn, SQLite, {os.cpu_count()} cores: {where})")
    print(f"  import {plan['imported']} members ({plan['rejected']} rejected):   {plan['import_s']:.2f} s")
    print(f"  form a plan through the API (POST /plans -> job done): {plan['plan_s']:.2f} s")
    print(f"      {plan['n_branches']} branches, {plan['n_assigned']} members assigned, gap {plan['gap']}")
    for r in (paced, flat_out):
        print(f"  relocations, {r['mode']}: {r['relocations']} from {r['clients']} concurrent clients in {r['seconds']:.2f} s")
        if r["rate"]:  # open loop: the throughput is what was offered, if the server kept up with it
            print(f"      throughput {r['per_second']:.0f}/s of {r['rate']:.0f}/s offered")
        else:
            print(f"      throughput {r['per_second']:.0f}/s (saturation, for reference)")
        verdict = (f"[target p99 < 50 ms at 100/s from 20 clients] {'OK' if r['p99_ms'] < 50 else 'MISSED'}"
                   if r["rate"] else
                   f"(saturation: {r['clients']} requests always outstanding, so latency is mostly their queue)")
        print(f"      latency p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
              f"max {r['max_ms']:.1f} ms   {verdict}")
        print(f"      server CPU per relocation {r['server_cpu_ms']:.2f} ms (one GIL: at most "
              f"{1000 / r['server_cpu_ms']:.0f}/s on a core of its own); load generator CPU "
              f"{r['client_cpu_ms']:.2f} ms per request")
        print(f"      writer: {r['batches']:.0f} transactions, {r['mean_batch']:.1f} relocations each on average, "
              f"{r['writer_ms_per_relocation']:.2f} ms of writer time per relocation")
        print(f"      other processes on the machine meanwhile: {r['other_cores']:.2f} cores busy"
              f"{'  (a busy machine: the latencies are not this service alone)' if r['other_cores'] > 0.1 else ''}")
        print(f"      status codes {r['status']}   actions {r['actions']}")
    ok = many["seconds"] < 2 and many["outside_limits"] == 0
    print(f"  POST /relocations with {many['items']} items: {many['seconds']:.2f} s, {many['applied']} applied, "
          f"{many['refused']} refused; branches outside {many['limits'][0]}..{many['limits'][1]} after: "
          f"{many['outside_limits']} of {many['branches']}   [target < 2 s, limits held] {'OK' if ok else 'MISSED'}")
    ok = hostile["status"] in (401, 413) and hostile["seconds"] < 0.5 and hostile["growth_mb"] < 20
    print(f"  keyless {hostile['megabytes']} MB body: answered {hostile['status']} in {hostile['seconds'] * 1000:.0f} ms "
          f"after {hostile['sent_mb']} MB sent; server memory {hostile['rss_before_mb']:.0f} -> "
          f"{hostile['rss_after_mb']:.0f} MB ({hostile['growth_mb']:+.1f} MB)   "
          f"[target 401/413 in < 0.5 s, < 20 MB] {'OK' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

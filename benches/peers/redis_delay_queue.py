"""The Redis side of the live-trigger comparison (`peers --only triggers`).

The abandoned-cart rule `on "Added To Cart" unless "Charged" within D` as a
Redis sorted-set delay queue: the set `pending` holds one member per user,
scored with its deadline (cart time + D).

- a cart:     ZADD pending NX <deadline> <user>   (NX: no second pending fire)
- a charge:   CANCEL (Lua): ZREM the user's member when the charge's time is
              inside its window, deadline - D <= ts <= deadline (the engine's
              bounds; a late charge cancels nothing)
- the poller: POP_DUE (Lua): ZRANGEBYSCORE pending -inf <now> WITHSCORES, then
              ZREMRANGEBYSCORE over the same range, atomically

Two modes, both printing one JSON object on stdout:

`simulated`: reads events.csv, keeps the carts and charges (the only events
the rule reads), sorts them by (ts, seq) and replays them on the stream's
clock in ticks of `--tick-ms`: before a tick's events, the fires due before
the tick starts are popped; then the tick's commands go in one pipeline (the
pop and the tick's commands share one round trip). Only that loop is timed
(not the CSV parsing). A pure-Python heapq oracle replays the same stream
with the same rules, and the script fails if Redis disagrees with it. The
replay runs once per server of `--ports` (e.g. one without persistence and
one with an fsync'd AOF). The fires are written to `--fires` as `user,due_ms`
lines.

`live`: a wall-clock run: `--carts` carts whose deadlines are spread over
`--spread-ms` (starting `--lead-ms` from now), every `--charged-every`-th one
charged before its deadline; a poller pops due fires every `--poll-ms` and
records when each is observed. Prints the fires with their lateness.
"""

import argparse
import csv
import heapq
import json
import platform
import sys
import time

import redis

KEY = "pending"
CART = "Added To Cart"
CHARGED = "Charged"

# KEYS[1] pending; ARGV: user, charge ts, window D. Cancels only inside the window.
CANCEL = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due then
  due = tonumber(due)
  local ts = tonumber(ARGV[2])
  if ts >= due - tonumber(ARGV[3]) and ts <= due then
    return redis.call('ZREM', KEYS[1], ARGV[1])
  end
end
return 0
"""

# KEYS[1] pending; ARGV[1] now. Pops every fire due at or before now.
POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
if #due > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
return due
"""


def wall_ms():
    return time.time_ns() // 1_000_000


def connect(port):
    client = redis.Redis(host="127.0.0.1", port=port)
    client.flushall()
    return client, client.script_load(CANCEL), client.script_load(POP_DUE)


def popped(reply):
    """(user, due_ms) pairs of a POP_DUE reply (member, score, member, score...)."""
    return [(int(reply[i]), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]


def load(path, from_ms):
    """The carts and charges of events.csv at or after from_ms, sorted by (ts, seq)."""
    events = []
    with open(path, newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for row in rows:
            name = row[3]
            if name != CART and name != CHARGED:
                continue
            ts = int(row[2])
            if ts >= from_ms:
                events.append((ts, int(row[1]), int(row[0]), name == CART))
    events.sort()
    return events


def ticks(events, tick_ms):
    """The events grouped by tick (ts // tick_ms), in order: (tick start, events)."""
    group, current = [], None
    for event in events:
        tick = event[0] // tick_ms
        if tick != current and group:
            yield current * tick_ms, group
            group = []
        current = tick
        group.append(event)
    if group:
        yield current * tick_ms, group


def oracle(events, tick_ms, within_ms):
    """The same rules on a dict and a heap: the fires, sorted."""
    pending, heap, fires = {}, [], []

    def pop_due(now):
        while heap and heap[0][0] <= now:
            due, user = heapq.heappop(heap)
            if pending.get(user) == due:
                del pending[user]
                fires.append((user, due))

    for start, group in ticks(events, tick_ms):
        pop_due(start - 1)
        for ts, _seq, user, cart in group:
            if cart:
                if user not in pending:
                    pending[user] = ts + within_ms
                    heapq.heappush(heap, (ts + within_ms, user))
            else:
                due = pending.get(user)
                if due is not None and due - within_ms <= ts <= due:
                    del pending[user]
    pop_due(float("inf"))
    return sorted(fires)


def server_cpu(client):
    """CPU seconds the server has used so far."""
    cpu = client.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def replay(port, events, tick_ms, within_ms):
    """The timed replay into the server on `port`:
    (seconds, the server's CPU seconds, sorted fires, left pending)."""
    client, cancel, pop_due = connect(port)
    cpu = server_cpu(client)
    fires = []
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for start, group in ticks(events, tick_ms):
        pipe.evalsha(pop_due, 1, KEY, start - 1)
        for ts, _seq, user, cart in group:
            if cart:
                pipe.zadd(KEY, {user: ts + within_ms}, nx=True)
            else:
                pipe.evalsha(cancel, 1, KEY, user, ts, within_ms)
        replies = pipe.execute()
        fires.extend(popped(replies[0]))
    fires.extend(popped(client.evalsha(pop_due, 1, KEY, "+inf")))
    elapsed = time.perf_counter() - started
    return elapsed, server_cpu(client) - cpu, sorted(fires), client.zcard(KEY)


def simulated(args):
    events = load(args.events, args.from_ms)
    expected = oracle(events, args.tick_ms, args.within_ms)
    elapsed, cpu = [], []
    for port in args.ports:
        seconds, cpu_s, fires, left = replay(port, events, args.tick_ms, args.within_ms)
        if fires != expected or left:
            extra = sorted(set(fires) - set(expected))[:5]
            missing = sorted(set(expected) - set(fires))[:5]
            sys.exit(f"Redis on port {port} disagrees with the heapq oracle: "
                     f"extra {extra}, missing {missing}, {left} left pending")
        elapsed.append(seconds)
        cpu.append(cpu_s)
    with open(args.fires, "w") as out:
        out.writelines(f"{user},{due}\n" for user, due in expected)
    carts = sum(1 for e in events if e[3])
    print(json.dumps({
        "events": len(events),
        "carts": carts,
        "fires": len(expected),
        "elapsed_s": elapsed,
        "server_cpu_s": cpu,
        "redis_py": redis.__version__,
        "python": platform.python_version(),
    }))


def live(args):
    client, cancel, pop_due = connect(args.port)
    t0 = wall_ms()
    pipe = client.pipeline(transaction=False)
    dues = [t0 + args.lead_ms + i * args.spread_ms // args.carts for i in range(args.carts)]
    for user, due in enumerate(dues):
        pipe.zadd(KEY, {user: due}, nx=True)
    for user, due in enumerate(dues):
        if user % args.charged_every == 0:
            pipe.evalsha(cancel, 1, KEY, user, due - args.within_ms + args.charge_after_ms,
                         args.within_ms)
    pipe.execute()
    fed_ms = wall_ms() - t0
    expected = sum(1 for user in range(args.carts) if user % args.charged_every != 0)
    until = dues[-1] + args.tail_ms
    fires = []
    while wall_ms() <= until:
        reply = client.evalsha(pop_due, 1, KEY, wall_ms())
        observed = wall_ms()
        fires.extend((user, due - t0, observed - due) for user, due in popped(reply))
        time.sleep(args.poll_ms / 1000)
    print(json.dumps({
        "fed_ms": fed_ms,
        "expected": expected,
        "fires": [[user, due] for user, due, _ in fires],
        "lateness_ms": [late for _, _, late in fires],
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["simulated", "live"])
    parser.add_argument("--port", type=int, help="the server (live)")
    parser.add_argument("--ports", type=lambda s: [int(p) for p in s.split(",")],
                        help="the servers to replay into, one after the other (simulated)")
    parser.add_argument("--within-ms", type=int, required=True)
    parser.add_argument("--events")
    parser.add_argument("--fires")
    parser.add_argument("--tick-ms", type=int)
    parser.add_argument("--from-ms", type=int, default=0)
    parser.add_argument("--carts", type=int)
    parser.add_argument("--spread-ms", type=int)
    parser.add_argument("--lead-ms", type=int)
    parser.add_argument("--charged-every", type=int)
    parser.add_argument("--charge-after-ms", type=int)
    parser.add_argument("--tail-ms", type=int)
    parser.add_argument("--poll-ms", type=float)
    args = parser.parse_args()
    simulated(args) if args.mode == "simulated" else live(args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What a new HoloStore user tries first, with redis-py: locks, pipelines with and without
transactions, WATCH, SCAN, hashes, expiry. Exits non-zero at the first surprise.

    python3 examples/clients/redis_py_example.py 127.0.0.1:16379 [127.0.0.1:16380 ...]

Every address given is used; the checks go through different nodes on purpose.
"""

import sys
import time
import uuid

import redis


def main() -> None:
    addrs = sys.argv[1:] or ["127.0.0.1:16379"]
    nodes = []
    for addr in addrs:
        host, port = addr.rsplit(":", 1)
        nodes.append(redis.Redis(host=host, port=int(port), decode_responses=True))
    a, b = nodes[0], nodes[-1]
    prefix = f"py-{uuid.uuid4().hex[:8]}-"

    def key(name: str) -> str:
        return prefix + name

    assert a.ping()

    # Strings and expiry: set(ex=...), expire, ttl, persist.
    assert a.set(key("greeting"), "hello", ex=30)
    assert b.get(key("greeting")) == "hello"
    assert 0 < b.ttl(key("greeting")) <= 30
    assert a.persist(key("greeting"))
    assert b.ttl(key("greeting")) == -1
    assert a.set(key("short"), "x", px=200)
    deadline = time.monotonic() + 10
    while b.exists(key("short")):
        assert time.monotonic() < deadline, "a key set with px=200 never expired"
        time.sleep(0.02)
    assert a.get(key("short")) is None

    # A lock: SET NX PX, refused to others through any node until released or expired.
    token = uuid.uuid4().hex
    assert a.set(key("lock"), token, nx=True, px=30_000)
    assert b.set(key("lock"), "someone-else", nx=True, px=30_000) is None
    # Release only if still ours: WATCH, check, MULTI/EXEC.
    with b.pipeline() as pipe:
        pipe.watch(key("lock"))
        assert pipe.get(key("lock")) == token
        pipe.multi()
        pipe.delete(key("lock"))
        assert pipe.execute() == [1]
    assert b.set(key("lock"), "someone-else", nx=True, px=30_000)

    # Pipelines: plain (no atomicity) and transactional (MULTI/EXEC).
    pipe = a.pipeline(transaction=False)
    for i in range(10):
        pipe.set(key(f"n{i}"), i)
    assert pipe.execute() == [True] * 10
    with b.pipeline(transaction=True) as pipe:
        pipe.incr(key("n1")).incrby(key("n2"), 10).mget(key("n1"), key("n2"))
        assert pipe.execute() == [2, 12, ["2", "12"]]

    # WATCH: a change by another client aborts the transaction.
    with a.pipeline() as pipe:
        pipe.watch(key("n3"))
        b.incr(key("n3"))
        pipe.multi()
        pipe.set(key("n3"), "overwritten")
        try:
            pipe.execute()
            raise AssertionError("EXEC ran although a watched key changed")
        except redis.WatchError:
            pass
    assert a.get(key("n3")) == "4"

    # Hashes.
    assert a.hset(key("user"), mapping={"name": "ada", "visits": "1"}) == 2
    assert b.hget(key("user"), "name") == "ada"
    assert b.hincrby(key("user"), "visits", 2) == 3
    assert a.hgetall(key("user")) == {"name": "ada", "visits": "3"}
    assert sorted(a.hkeys(key("user"))) == ["name", "visits"]
    assert a.hdel(key("user"), "visits") == 1
    assert a.type(key("user")) == "hash"
    try:
        a.get(key("user"))
        raise AssertionError("GET of a hash did not answer WRONGTYPE")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e

    # SCAN with MATCH, through the node that wrote the keys.
    found = set(a.scan_iter(match=key("n*"), count=3))
    assert found == {key(f"n{i}") for i in range(10)}, found
    assert key("user") in set(a.scan_iter(match=prefix + "*", _type="hash"))
    assert set(a.keys(key("n1*"))) == {key("n1")}

    # Cleanup through another node.
    assert b.delete(*[key(f"n{i}") for i in range(10)]) == 10
    print(f"redis-py {redis.__version__}: every check passed against {', '.join(addrs)}")


if __name__ == "__main__":
    main()

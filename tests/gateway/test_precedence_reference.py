"""Route precedence: the ordered model against a plain reference of the Gateway API's rules.

The reference below reads the spec's text literally: of every (route, rule, match) whose
hostname and match accept the request, the winner has the most specific matching hostname,
then an Exact path (then a regular expression — vipcast's implementation-specific place —
then the longest PathPrefix), a method, more headers, more query parameters, the oldest
creationTimestamp, the smallest ``namespace/name``, then the earliest rule and match. The
model's answer (first matching route of the virtual host Envoy would pick) must be that winner
on random routes and requests; shuffling the input must not change a byte of the model.
"""

from __future__ import annotations

import re
from typing import Any

from gwobjects import backend, gateway, gateway_class, route, service, spec_of
from hypothesis import given
from hypothesis import strategies as st

from vipcast.core.gateway import Request, listener_config, model_bytes, route_for, translate
from vipcast.core.gateway.lookup import path_prefix_matches

ROUTE_HOSTS = ["a.example.com", "b.example.com", "*.example.com", "*.a.example.com",
               "x.a.example.com"]
REQUEST_HOSTS = ["a.example.com", "b.example.com", "x.a.example.com", "y.x.a.example.com",
                 "other.org"]
PATHS = ["/", "/a", "/a/", "/a/b", "/ab", "/b"]
REQUEST_PATHS = ["/", "/a", "/a/", "/a/b", "/a/bc", "/ab", "/b/c", "/c"]
HEADERS = [("x-a", "1"), ("x-b", "2")]
QUERY = [("q", "1"), ("r", "2")]
TIMES = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", None]

match_st = st.fixed_dictionaries({
    "path": st.one_of(
        st.builds(lambda v: {"type": "PathPrefix", "value": v}, st.sampled_from(PATHS)),
        st.builds(lambda v: {"type": "Exact", "value": v}, st.sampled_from(PATHS)),
        st.just({"type": "RegularExpression", "value": "/a.*"}),
    ),
    "method": st.sampled_from([None, "GET", "POST"]),
    "headers": st.lists(st.sampled_from(HEADERS), unique=True, max_size=2),
    "queryParams": st.lists(st.sampled_from(QUERY), unique=True, max_size=2),
})
route_st = st.fixed_dictionaries({
    "hostnames": st.lists(st.sampled_from(ROUTE_HOSTS), unique=True, max_size=2),
    "rules": st.lists(st.lists(match_st, min_size=1, max_size=2), min_size=1, max_size=3),
    "created": st.sampled_from(TIMES),
    "ns": st.sampled_from(["default", "apps"]),
})
request_st = st.builds(
    lambda h, p, m, hd, q: Request(h, p, m, dict(hd), dict(q)),
    st.sampled_from(REQUEST_HOSTS), st.sampled_from(REQUEST_PATHS),
    st.sampled_from(["GET", "POST"]),
    st.lists(st.sampled_from(HEADERS), unique=True), st.lists(st.sampled_from(QUERY), unique=True),
)


def _match_doc(m: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"path": m["path"]}
    if m["method"]:
        doc["method"] = m["method"]
    doc["headers"] = [{"name": n, "value": v} for n, v in m["headers"]]
    doc["queryParams"] = [{"name": n, "value": v} for n, v in m["queryParams"]]
    return doc


def _documents(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gw = gateway(listeners=[{"name": "http", "port": 80, "protocol": "HTTP",
                             "allowedRoutes": {"namespaces": {"from": "All"}}}])
    docs = [gateway_class(), gw, service("s"), service("s", ns="apps")]
    for i, r in enumerate(routes):
        rules = [{"matches": [_match_doc(m) for m in rule], "backendRefs": [backend("s")]}
                 for rule in r["rules"]]
        docs.append(route(f"r{i}", r["ns"], hostnames=r["hostnames"], rules=rules,
                          parents=[{"name": "web", "namespace": "default"}],
                          created=r["created"]))
    return docs


# ---------------------------------------------------------------- the reference


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def _accepts(m: dict[str, Any], req: Request) -> bool:
    kind, value = m["path"]["type"], m["path"]["value"]
    if kind == "Exact" and req.path != value:
        return False
    if kind == "PathPrefix" and not path_prefix_matches(value, req.path):
        return False
    if kind == "RegularExpression" and not re.fullmatch(value, req.path):
        return False
    if m["method"] and m["method"] != req.method:
        return False
    return all(req.headers.get(n) == v for n, v in m["headers"]) and all(
        req.query.get(n) == v for n, v in m["queryParams"])


def _better(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether candidate ``a`` takes precedence over ``b`` (both match the request)."""
    (ha, ra, ia, ja, ma), (hb, rb, ib, jb, mb) = a, b
    # 1. hostname: characters of a non-wildcard matching hostname, then characters
    def host_rank(h: str | None) -> tuple[int, int]:
        if h is None:
            return (0, 0)
        return (0 if h.startswith("*") else len(h), len(h))
    if host_rank(ha) != host_rank(hb):
        return host_rank(ha) > host_rank(hb)
    # 2. path: Exact, then regular expression, then the longest prefix
    order = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}
    pa, pb = ma["path"], mb["path"]
    if order[pa["type"]] != order[pb["type"]]:
        return order[pa["type"]] < order[pb["type"]]
    if len(pa["value"]) != len(pb["value"]):
        return len(pa["value"]) > len(pb["value"])
    # 3. method, 4. headers, 5. query parameters
    if bool(ma["method"]) != bool(mb["method"]):
        return bool(ma["method"])
    if len(ma["headers"]) != len(mb["headers"]):
        return len(ma["headers"]) > len(mb["headers"])
    if len(ma["queryParams"]) != len(mb["queryParams"]):
        return len(ma["queryParams"]) > len(mb["queryParams"])
    # 6. the oldest route (no timestamp: the epoch), 7. namespace/name, 8. rule, match order
    ta, tb = ra["created"] or "1970", rb["created"] or "1970"
    if ta != tb:
        return ta < tb
    if (ra["ns"], ra["name"]) != (rb["ns"], rb["name"]):
        return (ra["ns"], ra["name"]) < (rb["ns"], rb["name"])
    return (ia, ja) < (ib, jb)


def reference(routes: list[dict[str, Any]], req: Request) -> str | None:
    best: tuple[Any, ...] | None = None
    for n, r in enumerate(routes):
        r = {**r, "name": f"r{n}"}
        if r["hostnames"]:
            hosts = [h for h in r["hostnames"] if _host_matches(h, req.host)]
            if not hosts:
                continue
            host: str | None = max(hosts, key=lambda h: (0 if h[0] == "*" else len(h), len(h)))
        else:
            host = None
        for i, rule in enumerate(r["rules"]):
            for j, m in enumerate(rule):
                if _accepts(m, req):
                    cand = (host, r, i, j, m)
                    if best is None or _better(cand, best):
                        best = cand
    if best is None:
        return None
    _h, r, i, j, _m = best
    return f"{r['ns']}/{r['name']}/rule/{i}/match/{j}"


@given(st.lists(route_st, min_size=1, max_size=5), st.lists(request_st, min_size=1, max_size=8))
def test_model_answers_as_the_reference(routes: list[dict[str, Any]],
                                        requests: list[Request]) -> None:
    t = translate(spec_of(_documents(routes)), "n1")
    config = listener_config(t.model, "192.0.2.80", 80)
    assert config is not None
    for req in requests:
        got = route_for(config, req)
        assert (got.name if got else None) == reference(routes, req), req


@given(st.lists(route_st, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_shuffled_input_gives_the_same_model(routes: list[dict[str, Any]], rnd: Any) -> None:
    docs = _documents(routes)
    want = model_bytes(translate(spec_of(docs), "n1"))
    rnd.shuffle(docs)
    assert model_bytes(translate(spec_of(docs), "n1")) == want


def test_ties_go_to_the_oldest_route_then_namespace_and_name() -> None:
    same = {"path": {"type": "PathPrefix", "value": "/a"}, "method": None, "headers": [],
            "queryParams": []}
    routes = [
        {"hostnames": [], "rules": [[same]], "created": "2026-03-01T00:00:00Z", "ns": "apps"},
        {"hostnames": [], "rules": [[same]], "created": "2026-02-01T00:00:00+00:00", "ns": "x"},
        {"hostnames": [], "rules": [[same]], "created": "2026-02-01T01:00:00+01:00", "ns": "b"},
    ]
    t = translate(spec_of(_documents(routes)), "n1")
    config = listener_config(t.model, "192.0.2.80", 80)
    assert config is not None
    got = route_for(config, Request("a.example.com", "/a/x"))
    # r1 and r2 were created at the same instant (r2 in another zone): namespace b < x
    assert got is not None and got.name == "b/r2/rule/0/match/0"

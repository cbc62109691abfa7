"""Validating admission for vipcast's kinds (pure: AdmissionReview request in, response out).

A create or update is judged as the whole config would be after it:

* the object itself must validate against its spec model (the same rules as files) -> deny;
* problems the change *adds* among our objects (an overlapping pool, a selector that can never
  match, an impossible aggregation length, ...) -> deny, with every problem in the message;
* added references to objects that do not exist (yet) -> allowed with a warning, so a
  multi-document ``kubectl apply`` works in any order;
* problems that existed before the change are not held against it.

Deletes are allowed. Kinds other than ours are allowed untouched.

``NodeAnnouncement`` (a speaker's report) is judged by who writes it: a speaker's
ServiceAccount (``speakers``) may create or update only the report named after its own node,
which its bound pod token carries (``userInfo.extra["authentication.kubernetes.io/node-name"]``,
Kubernetes >= 1.32). RBAC cannot say this (a DaemonSet's pods share one ServiceAccount and
``resourceNames`` would have to list every node), so without this check any node's speaker
could forge another node's report.

``Node`` updates by a speaker are held to the same node: the chart grants the speakers
``patch`` on Nodes for one purpose, the drain-state annotation on their own Node
(docs/drain.md), and RBAC would let that verb change any Node's labels or taints. A speaker
may update only the Node its token names, and the update may change nothing but the
annotation ``vipcast.io/drain-state``. Nobody else's Node writes reach this webhook (its
``matchConditions`` name the speakers' ServiceAccount).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from vipcast.core.drain import DRAIN_STATE_ANNOTATION
from vipcast.sources.kube.snapshot import OUR_KINDS, documents, to_document
from vipcast.spec import KINDS, Issue, SpecError, load_documents
from vipcast.spec.documents import JSON
from vipcast.spec.gateway.objects import (
    DEFAULT_CLASS_ANNOTATION,
    INGRESS_CLASS_ANNOTATION,
    INGRESS_CONTROLLER,
)


def _field(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _issues(docs: Iterable[tuple[str, JSON]]) -> set[tuple[str, str, str, str]]:
    try:
        load_documents(list(docs))
    except SpecError as error:
        return {(i.kind, i.name, i.field, i.message) for i in error.issues}
    return set()


def _is_reference(message: str) -> bool:
    return message.startswith("unknown ")


def _response(uid: str, allowed: bool, message: str = "", warnings: Sequence[str] = (),
              code: int = 200) -> JSON:
    response: JSON = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code, "reason": "Invalid", "message": message}
    if warnings:
        response["warnings"] = list(warnings)[:20]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": response}


def model_issues(kind: str, obj: Mapping[str, Any]) -> list[Issue]:
    """Problems of one object on its own (its spec model)."""
    _, model = KINDS[kind]
    doc = to_document(kind, obj)
    name = str((doc.get("metadata") or {}).get("name", ""))
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        return [Issue("", kind, name, _field(tuple(e["loc"])),
                      e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
    return []


NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
REPORT_KIND = "NodeAnnouncement"


def report_review(request: Mapping[str, Any], speakers: Collection[str]) -> JSON:
    """A write of a NodeAnnouncement: a speaker writes its own node's report only."""
    uid = str(request.get("uid", ""))
    user = request.get("userInfo") or {}
    username = str(user.get("username") or "")
    if username not in speakers or request.get("operation") not in ("CREATE", "UPDATE"):
        return _response(uid, True)
    name = str(request.get("name") or ((request.get("object") or {}).get("metadata") or {})
               .get("name") or "")
    nodes = ((user.get("extra") or {}).get(NODE_NAME_EXTRA)) or []
    if not nodes:
        return _response(uid, False, f"{username} may write only its own node's "
                         f"{REPORT_KIND}, and its token names no node (bound pod tokens carry "
                         f"{NODE_NAME_EXTRA} from Kubernetes 1.32)", code=403)
    if str(nodes[0]) != name:
        return _response(uid, False, f"the speaker of node {nodes[0]} may not write "
                         f"{REPORT_KIND} {name}", code=403)
    return _response(uid, True)


NODE_KIND = "Node"
#: metadata the API server itself changes on every write (not the writer's change)
_SERVER_FIELDS = ("resourceVersion", "managedFields", "generation")


def _without_drain_state(obj: Mapping[str, Any]) -> JSON:
    out = dict(obj)
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items()
             if k != DRAIN_STATE_ANNOTATION}
    meta.pop("annotations", None)
    if notes:
        meta["annotations"] = notes
    out["metadata"] = meta
    return out


def _changed(old: Any, new: Any, path: str = "") -> list[str]:
    """The fields (dotted paths) where ``old`` and ``new`` differ."""
    if isinstance(old, Mapping) or isinstance(new, Mapping):
        old, new = old if old is not None else {}, new if new is not None else {}
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changed(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [path or "(object)"]


def node_review(request: Mapping[str, Any], speakers: Collection[str]) -> JSON:
    """A speaker's write of a Node: its own Node, the drain-state annotation only."""
    uid = str(request.get("uid", ""))
    user = request.get("userInfo") or {}
    username = str(user.get("username") or "")
    if username not in speakers:
        return _response(uid, True)
    name = str(request.get("name") or "")
    operation = str(request.get("operation") or "")
    if operation != "UPDATE":
        return _response(uid, False, f"{username} may not {operation.lower()} Node {name}: "
                         f"a speaker only updates its own Node's {DRAIN_STATE_ANNOTATION}",
                         code=403)
    nodes = ((user.get("extra") or {}).get(NODE_NAME_EXTRA)) or []
    if not nodes:
        return _response(uid, False, f"{username} may write only its own Node, and its token "
                         f"names no node (bound pod tokens carry {NODE_NAME_EXTRA} from "
                         f"Kubernetes 1.32)", code=403)
    if str(nodes[0]) != name:
        return _response(uid, False, f"the speaker of node {nodes[0]} may not write Node "
                         f"{name}", code=403)
    changed = _changed(_without_drain_state(request.get("oldObject") or {}),
                       _without_drain_state(request.get("object") or {}))
    if changed:
        return _response(uid, False, f"the speaker of node {name} may change only the "
                         f"annotation {DRAIN_STATE_ANNOTATION} of its Node, not "
                         f"{', '.join(changed[:5])}", code=403)
    return _response(uid, True)


def _class_of(ingress: Mapping[str, Any]) -> JSON:
    """An IngressClass of vipcast's controller that makes ``ingress`` vipcast's."""
    meta = ingress.get("metadata") or {}
    name = (ingress.get("spec") or {}).get("ingressClassName") or \
        (meta.get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
    notes = {} if name else {DEFAULT_CLASS_ANNOTATION: "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name or "vipcast-admission", "annotations": notes},
            "spec": {"controller": INGRESS_CONTROLLER}}


def review(admission: Mapping[str, Any], existing: Mapping[str, Iterable[Mapping[str, Any]]],
           speakers: Collection[str] = ()) -> JSON:
    """Answer one AdmissionReview; ``existing`` is ``kind -> objects`` of our kinds now,
    ``speakers`` the usernames of the speakers' ServiceAccounts."""
    request = admission.get("request") or {}
    uid = str(request.get("uid", ""))
    obj = request.get("object") or {}
    kind = str((request.get("kind") or {}).get("kind") or obj.get("kind") or "")
    if kind == REPORT_KIND:
        return report_review(request, speakers)
    if kind == NODE_KIND:
        return node_review(request, speakers)
    if request.get("operation") not in ("CREATE", "UPDATE") or kind not in OUR_KINDS:
        return _response(uid, True)
    own = model_issues(kind, obj)
    if own:
        text = "; ".join(f"{i.field}: {i.message}" if i.field else i.message for i in own)
        return _response(uid, False, f"{kind} {request.get('name') or ''}: {text}", code=422)
    name = str((obj.get("metadata") or {}).get("name", ""))
    others = {k: [o for o in objs if not (k == kind and
                                           (o.get("metadata") or {}).get("name") == name)]
              for k, objs in existing.items() if k in OUR_KINDS}
    if kind == "Ingress":
        # asked only for Ingresses of vipcast's class (the webhook's matchConditions: its
        # IngressClass by field or legacy annotation, none when that class is the default):
        # judged as vipcast's, whatever the IngressClasses this webhook does not watch say
        others = {**others, "IngressClass": [_class_of(obj)]}
    before = _issues(documents(others))
    after_objects = {k: list(v) for k, v in others.items()}
    after_objects.setdefault(kind, []).append(obj)
    after = _issues(documents(after_objects))
    # problems of the previous version of this object don't count as "before" for it
    old = request.get("oldObject")
    if old:
        with_old = {k: list(v) for k, v in others.items()}
        with_old.setdefault(kind, []).append(old)
        before |= _issues(documents(with_old))
    added = sorted(after - before)
    denied = [i for i in added if not _is_reference(i[3])]
    warnings = [f"{k}/{n} {f}: {m}" for k, n, f, m in added if _is_reference(m)]
    if denied:
        text = "; ".join(f"{k}/{n} {f}: {m}" for k, n, f, m in denied)
        return _response(uid, False, text, warnings, code=422)
    return _response(uid, True, warnings=warnings)

"""Kubernetes object metadata and label selectors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

# RFC 1123 subdomain (object names) and label names/values as Kubernetes validates them
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class Model(BaseModel):
    """Base of our own kinds' parts: camelCase on the wire, unknown fields refused, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
        # the validator is built when a model first validates: the kinds a config does not
        # use (Gateway API, providers, CNI) cost no start-up time
        defer_build=True,
    )


class ViewModel(BaseModel):
    """Base of read-only views of core Kubernetes objects: fields we don't read are ignored."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True,
        defer_build=True,
    )


def _check_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    for key, value in labels.items():
        if not _LABEL_NAME.match(key) or len(key.split("/")[-1]) > 63:
            raise ValueError(f"invalid label key {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ValueError(f"invalid label value {value!r} for key {key!r}")
    return labels


class ObjectMeta(ViewModel):
    """The metadata we read (name, namespace, labels, annotations)."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    finalizers: tuple[str, ...] = ()
    deletion_timestamp: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a valid name (lower-case RFC 1123 subdomain)")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        _check_labels(value)
        return value


class Requirement(Model):
    """One ``matchExpressions`` entry."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


class LabelSelector(Model):
    """A Kubernetes label selector. An empty selector matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def contradictions(self) -> list[str]:
        """Why this selector can never match any object (empty when it can)."""
        problems: list[str] = []
        must: dict[str, set[str] | None] = {k: {v} for k, v in self.match_labels.items()}
        absent: set[str] = set()
        for req in self.match_expressions:
            if req.operator in ("In", "NotIn") and not req.values:
                problems.append(f"operator {req.operator} on {req.key!r} needs values")
                continue
            if req.operator in ("Exists", "DoesNotExist") and req.values:
                problems.append(f"operator {req.operator} on {req.key!r} takes no values")
                continue
            if req.operator == "DoesNotExist":
                absent.add(req.key)
            elif req.operator == "Exists":
                must.setdefault(req.key, None)
            elif req.operator == "In":
                allowed = set(req.values)
                before = must.get(req.key)
                must[req.key] = allowed if before is None else before & allowed
            else:  # NotIn
                prev = must.get(req.key)
                if prev is not None:
                    must[req.key] = prev - set(req.values)
        for key, values_left in must.items():
            if key in absent:
                problems.append(f"label {key!r} is required and forbidden at once")
            elif values_left is not None and not values_left:
                problems.append(f"no value of label {key!r} satisfies every requirement")
        return problems

"""The Keystone credential of an Octavia ``LoadBalancerProvider``, read from its Secret.

The Secret's keys are the names of the ``auth`` section of a ``clouds.yaml`` (``auth_url``
plus either an application credential -- ``application_credential_id`` or ``_name``, and
``application_credential_secret`` -- or a password -- ``username`` or ``user_id``,
``password``, ``project_name`` or ``project_id``, the domains), and optionally
``region_name``::

    kubectl -n vipcast-system create secret generic octavia \\
      --from-literal=auth_url=https://keystone.example:5000/v3 \\
      --from-literal=application_credential_id=... \\
      --from-literal=application_credential_secret=...

Every key is checked: an unknown one (a typo) or a missing one is an issue naming the Secret
and the key, never a guess. Pure: values in, a :class:`KeystoneCredential` or the problems out.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from vipcast.spec.kube import Secret

AuthType = Literal["v3applicationcredential", "v3password"]


class KeystoneCredential(BaseModel):
    """What openstacksdk needs to get a token (``auth_type`` + ``auth``), secrets included."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    auth_url: str
    application_credential_id: str | None = None
    application_credential_name: str | None = None
    application_credential_secret: str | None = None
    username: str | None = None
    user_id: str | None = None
    password: str | None = None
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    region_name: str | None = None

    @model_validator(mode="after")
    def _whole(self) -> KeystoneCredential:
        url = urlparse(self.auth_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"auth_url {self.auth_url!r} is not an http(s):// URL")
        if self.auth_type == "v3applicationcredential":
            if not self.application_credential_secret:
                raise ValueError("application_credential_secret is missing")
            if not self.application_credential_id and not (
                    self.application_credential_name and (self.user_id or self.username)):
                raise ValueError("application_credential_id is missing (or "
                                 "application_credential_name with username or user_id)")
            if self.password:
                raise ValueError("password and application_credential_* exclude each other")
            return self
        if not (self.username or self.user_id):
            raise ValueError("username (or user_id) is missing; or give "
                             "application_credential_id and application_credential_secret")
        if not self.password:
            raise ValueError("password is missing")
        if not (self.project_name or self.project_id):
            raise ValueError("project_name (or project_id) is missing")
        return self

    @property
    def auth_type(self) -> AuthType:
        if any((self.application_credential_id, self.application_credential_name,
                self.application_credential_secret)):
            return "v3applicationcredential"
        return "v3password"

    def auth(self) -> dict[str, str]:
        """The ``auth`` mapping (keystoneauth's names); names default to domain Default."""
        out = {k: v for k, v in self.model_dump().items() if v and k != "region_name"}
        if self.auth_type == "v3password":
            if self.username and not self.user_domain_id:
                out.setdefault("user_domain_name", "Default")
            if self.project_name and not self.project_domain_id:
                out.setdefault("project_domain_name", "Default")
        elif self.application_credential_name and self.username and not self.user_domain_id:
            out.setdefault("user_domain_name", "Default")
        return out

    def describe(self) -> str:
        """Who this credential says it is (no secret in it), for conditions and logs."""
        if self.auth_type == "v3applicationcredential":
            ident = self.application_credential_id or self.application_credential_name
            return f"application credential {ident}"
        project = self.project_name or self.project_id
        return f"user {self.username or self.user_id} in project {project}"


FIELDS = tuple(KeystoneCredential.model_fields)


def keystone_credential(secret: Secret) -> KeystoneCredential:
    """The credential the Secret's keys make up.

    Raises:
        ValueError: one line per problem, each naming the key.
    """
    values: dict[str, str] = {}
    problems = []
    for key in sorted({*secret.data, *secret.string_data}):
        if key not in FIELDS:
            problems.append(f"key {key!r} is not a Keystone auth field (one of "
                            f"{', '.join(FIELDS)})")
            continue
        try:
            text = secret.value(key)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if text is not None and text.strip():
            values[key] = text
    if problems:
        raise ValueError("; ".join(problems))
    try:
        return KeystoneCredential.model_validate(values)
    except ValidationError as exc:
        raise ValueError("; ".join(_line(e) for e in exc.errors())) from None


def _line(error: object) -> str:
    assert isinstance(error, dict)
    loc = ".".join(str(x) for x in error.get("loc", ()))
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if error.get("type") == "missing":
        return f"key {loc!r} is missing"
    return f"key {loc!r}: {msg}" if loc else msg

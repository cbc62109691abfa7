"""Create an Octavia API database on sqlite (run by the OCTAVIA venv's python, not vipcast's).

``octavia-db-manage upgrade`` cannot run on sqlite, so, as Octavia's functional tests do, the
tables come from the models' metadata and the lookup tables get one row per supported name,
plus the DELETED placeholders (flavor profile/flavor, availability zone profile/zone).
Usage: python octavia_seed.py /path/to/octavia.sqlite
"""

import sys

from octavia.common import constants as c
from octavia.db import base_models, models
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

LOOKUPS = [
    (c.SUPPORTED_PROVISIONING_STATUSES, models.ProvisioningStatus),
    (c.SUPPORTED_HEALTH_MONITOR_TYPES, models.HealthMonitorType),
    (c.SUPPORTED_LB_ALGORITHMS, models.Algorithm),
    (c.SUPPORTED_PROTOCOLS, models.Protocol),
    (c.SUPPORTED_OPERATING_STATUSES, models.OperatingStatus),
    (c.SUPPORTED_SP_TYPES, models.SessionPersistenceType),
    (c.SUPPORTED_AMPHORA_ROLES, models.AmphoraRoles),
    (c.SUPPORTED_LB_TOPOLOGIES, models.LBTopology),
    (c.SUPPORTED_VRRP_AUTH, models.VRRPAuthMethod),
    (c.SUPPORTED_L7RULE_TYPES, models.L7RuleType),
    (c.SUPPORTED_L7RULE_COMPARE_TYPES, models.L7RuleCompareType),
    (c.SUPPORTED_L7POLICY_ACTIONS, models.L7PolicyAction),
    (c.SUPPORTED_CLIENT_AUTH_MODES, models.ClientAuthenticationMode),
]


def main(path: str) -> None:
    engine = create_engine(f"sqlite:///{path}")
    base_models.BASE.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for names, model in LOOKUPS:
            for name in names:
                session.add(model(name=name))
        session.add(models.FlavorProfile(id=c.NIL_UUID, name="DELETED-PLACEHOLDER",
                                         provider_name=c.DELETED, flavor_data="{}"))
        session.flush()
        session.add(models.Flavor(id=c.NIL_UUID, flavor_profile_id=c.NIL_UUID,
                                  name="DELETED-PLACEHOLDER", enabled=False))
        session.add(models.AvailabilityZoneProfile(
            id=c.NIL_UUID, name="DELETED-PLACEHOLDER", provider_name=c.DELETED,
            availability_zone_data="{}"))
        session.flush()
        session.add(models.AvailabilityZone(availability_zone_profile_id=c.NIL_UUID,
                                            name=c.NIL_UUID, enabled=False))
    with engine.connect() as conn:  # WAL: the tests' status moves never block the API's reads
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    print(len(base_models.BASE.metadata.tables), "tables")


if __name__ == "__main__":
    main(sys.argv[1])

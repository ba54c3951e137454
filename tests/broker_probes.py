"""Who is connected to the brokers: the leak checks of test_workers and test_panel."""

import brokerlab as bl
from brokerlab.rabbitmq import management_get


def rabbitmq_connection_names() -> list[str]:
    rows = management_get("/api/connections", bl.get_settings())
    return [str((r.get("client_properties") or {}).get("connection_name")) for r in rows]


def redis_client_names() -> list[str]:
    client = bl.redis_client()
    try:
        return [c.get("name", "") for c in client.client_list()]
    finally:
        client.close()

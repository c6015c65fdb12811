"""Attribution of every cost to requests and idle capacity (docs/attribution.md)."""

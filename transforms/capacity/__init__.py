"""Capacity learned from the telemetry and from performance profiles (DOMAIN.md section 8,
docs/capacity.md): how much load a node of a pool can carry for a model at a tier's latency
objectives. Pure Polars: request facts, profiles and the inventory in, frames out."""

from transforms.capacity.day import capacity_pools, day_capacity
from transforms.capacity.efficiency import EFFICIENCY_SCHEMA, profile_efficiency
from transforms.capacity.learn import (CAPACITY_SCHEMA, MIN_SAMPLES, capacity_at_objectives, learned_capacity,
                                       load_bucket, pool_model_capacity, profile_capacity)
from transforms.capacity.load import latency_samples, node_minute_load

__all__ = ["CAPACITY_SCHEMA", "EFFICIENCY_SCHEMA", "MIN_SAMPLES", "capacity_at_objectives", "capacity_pools",
           "day_capacity", "latency_samples",
           "learned_capacity", "load_bucket", "node_minute_load", "pool_model_capacity", "profile_capacity",
           "profile_efficiency"]

"""The inventory is validated on load, every mistake named with its place and the fix."""

import pytest

from lake.inventory import load_inventory
from tests.conftest import DATA
from transforms.inventory import InventoryError, parse_inventory

TEXT = (DATA / "inventory_small.yaml").read_text()


def test_small_inventory_loads(small_inventory):
    assert small_inventory.site_ids == ["metro-east", "remote-plains", "cloud-use1"]
    assert small_inventory.tier_ids == ["premium", "standard", "batch"]
    nodes = small_inventory.nodes_frame().collect()
    assert nodes.filter(nodes["node_id"] == "r-l40s-bat-01").row(0, named=True)["site_id"] == "remote-plains"
    meters = small_inventory.meters_frame().collect()
    # 3 declared node meters + 1 facility meter + one implicit meter per GPU (8 + 4 + 4 + 8).
    assert meters.height == 4 + 24
    assert meters.filter(meters["meter_id"] == "c-h100-01/gpu7").row(0, named=True)["scope"] == "gpu"


def _errors(text: str) -> str:
    with pytest.raises(InventoryError) as e:
        parse_inventory(text, "inv.yaml")
    return str(e.value)


def test_field_errors_are_all_reported_with_their_place():
    bad = (TEXT.replace("America/Chicago", "Mars/Base").replace("gpus: 4", "gpuz: 4", 1)
           .replace("design_pue: 1.15", "design_pue: 0.9"))
    msg = _errors(bad)
    assert msg.startswith("inv.yaml: 4 problem(s) in the inventory:")
    assert "sites[1].timezone: unknown IANA time zone 'Mars/Base'" in msg
    assert "sites[0].design_pue: Input should be greater than or equal to 1" in msg
    assert "nodes[1].gpus: Field required" in msg
    assert "nodes[1].gpuz: unknown key" in msg


def test_reference_errors_name_the_unknown_id_and_the_known_ones():
    msg = _errors(TEXT.replace("pool: batch-l40s", "pool: batch-a10")
                  .replace("reserved_pools: [premium-h200]", "reserved_pools: [gold]"))
    assert "nodes[2].pool: unknown pool 'batch-a10'; known: batch-l40s, cloud-h100, premium-h200, standard-l40s" in msg
    assert "tiers[0].reserved_pools: unknown pool 'gold'" in msg


def test_duplicate_ids_and_missing_tariff():
    msg = _errors(TEXT.replace("id: r-l40s-bat-01,", "id: r-l40s-std-01,").replace(", tariff: plains-tou", ""))
    assert "nodes[2].id: duplicate id 'r-l40s-std-01'" in msg
    assert "sites[1].tariff: site 'remote-plains' is not a cloud site and needs a tariff" in msg


def test_not_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in _errors("sites: [unclosed")
    with pytest.raises(InventoryError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yaml")

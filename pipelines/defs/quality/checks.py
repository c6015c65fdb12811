"""Data-quality checks on every asset (docs/data-quality.md). Inputs block attribution on an
error; the attributed facts block what is built on them (the marts)."""

from pipelines.quality import source_checks, suite_checks

requests_quality = suite_checks("requests", "requests", blocking=True)
power_readings_quality = suite_checks("power_readings", "power_readings", blocking=True)
cost_lines_quality = suite_checks("cost_lines", "cost_lines", blocking=True)
asset_register_quality = suite_checks("assets", "asset_register", blocking=True)
request_costs_quality = suite_checks("request_costs", "request_costs", blocking=True)

# What each ingest lost to quarantine or ignored, before attribution reads it.
requests_sources = source_checks("requests", "requests")
power_readings_sources = source_checks("power_readings", "power_readings")
cost_lines_sources = source_checks("cost_lines", "cost_lines")
asset_register_sources = source_checks("assets", "asset_register")
market_prices_sources = source_checks("market_prices", "market_prices")
fx_rates_sources = source_checks("fx_rates", "fx_rates")
performance_profiles_sources = source_checks("performance_profiles", "performance_profiles")

"""Shared pytest configuration: fixture modules are registered here."""
import os
import sys

# fixture modules and test servers live next to this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest_plugins = ["neptune_fixtures", "wandb_fixtures", "core_fixtures", "push_fixtures", "server_fixtures",
                  "s3_fixtures"]

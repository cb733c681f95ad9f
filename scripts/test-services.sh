#!/usr/bin/env bash
# Make sure the services the tests talk to are running on this machine.
set -euo pipefail
echo "Test services: nothing to start yet."

"""Operating a deployment: `flotilla status` (a running gateway) and `flotilla doctor` (a spec's needs)."""

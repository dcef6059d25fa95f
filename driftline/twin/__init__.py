"""The local twin: Driftline's synthesized CloudFormation templates running on moto, offline."""

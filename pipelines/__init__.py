"""Pure logic for Driftline: no boto3, no aws_cdk; typed, seeded where random."""

"""Audit listeners that tell people: Slack, GitHub commit statuses and deployments."""

"""A seeded simulator of agent traces in trace format v1."""
